"""Screen sharing (``--screen``): a monitor of a private Xvfb display as a paced source."""

from __future__ import annotations

import numpy as np
import pytest

from peer.node.cli import build_parser, config_from_args
from peer.node.config import ScreenSource
from peer.node.errors import MediaError
from peer.node.screen import ScreenFrameSource


def test_a_monitor_is_a_bgr_source(display: str) -> None:
    source = ScreenFrameSource(1, 10.0, display=display)
    try:
        assert (source.width, source.height, source.fps) == (640, 360, 10.0)
        assert source.paced and source.duration_s is None
        image = source.read()
        assert image.shape == (360, 640, 3) and image.dtype == np.uint8
        assert image.flags.c_contiguous
    finally:
        source.close()
        source.close()  # idempotent


def test_bad_monitor_and_rate_are_explained(display: str) -> None:
    with pytest.raises(MediaError, match=r"no monitor 5: this display has 1 \(1-1"):
        ScreenFrameSource(5, display=display)
    with pytest.raises(MediaError, match="out of range"):
        ScreenFrameSource(1, 500.0, display=display)


def test_no_display_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="cannot capture the screen"):
        ScreenFrameSource(1, display=":199")


def test_cli_screen_flag() -> None:
    parser = build_parser()
    config = config_from_args(parser.parse_args(["--name", "s", "--tracker", "h:1",
                                                 "--screen"]))
    assert config.source == ScreenSource(1, 15.0)
    config = config_from_args(parser.parse_args(["--name", "s", "--tracker", "h:1",
                                                 "--screen", "2", "--fps", "5"]))
    assert config.source == ScreenSource(2, 5.0)


def test_open_source_shares_the_screen(display: str, monkeypatch) -> None:
    from peer.node.media import open_source

    monkeypatch.setenv("DISPLAY", display)
    source = open_source(ScreenSource(1, 12.0))
    try:
        assert isinstance(source, ScreenFrameSource) and source.fps == 12.0
        assert source.read().shape == (360, 640, 3)
    finally:
        source.close()
