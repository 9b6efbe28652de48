"""treecast-peer's video options: --codec and --resolution auto."""

from __future__ import annotations

import pytest

from peer.node.cli import build_parser, config_from_args


def config(*args: str):  # type: ignore[no-untyped-def]
    return config_from_args(build_parser().parse_args(["--name", "x", *args]))


def test_defaults_are_h264_at_a_fixed_720() -> None:
    cfg = config()
    assert (cfg.codec, cfg.resolution, cfg.auto_resolution) == ("h264", 720, False)


def test_auto_and_mjpeg() -> None:
    cfg = config("--resolution", "auto", "--codec", "mjpeg")
    assert (cfg.codec, cfg.resolution, cfg.auto_resolution) == ("mjpeg", 1080, True)


@pytest.mark.parametrize("args", [["--resolution", "700"], ["--resolution", "best"],
                                  ["--codec", "vp9"]])
def test_bad_values_are_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        config(*args)
    assert info.value.code == 2
    assert "resolution must be one of" in capsys.readouterr().err or args[0] == "--codec"
