"""Layer choice and layer frame sizes."""

from __future__ import annotations

import pytest

from peer.node.layers import available_layers, clamp_layer, layer_size
from protocol.limits import LAYERS


@pytest.mark.parametrize(
    ("height", "expected"),
    [
        (2160, (360, 480, 720, 1080)),
        (1080, (360, 480, 720, 1080)),
        (1079, (360, 480, 720)),
        (720, (360, 480, 720)),
        (480, (360, 480)),
        (360, (360,)),
        (240, (360,)),
        (2, (360,)),
    ],
)
def test_available_layers(height: int, expected: tuple[int, ...]) -> None:
    assert available_layers(height) == expected


@pytest.mark.parametrize(
    ("layer", "width", "height", "expected"),
    [
        (360, 1920, 1080, (640, 360)),
        (480, 1920, 1080, (854, 480)),
        (720, 1920, 1080, (1280, 720)),
        (1080, 1920, 1080, (1920, 1080)),
        (1080, 1280, 720, (1280, 720)),  # never upscaled
        (360, 320, 240, (320, 240)),  # tiny source: served at its own size
        (360, 641, 361, (640, 360)),  # odd source trimmed to even
        (360, 1080, 1920, (202, 360)),  # portrait
        (480, 640, 480, (640, 480)),
        (360, 640, 480, (480, 360)),
        (360, 3, 3, (2, 2)),
    ],
)
def test_layer_size(layer: int, width: int, height: int, expected: tuple[int, int]) -> None:
    assert layer_size(layer, width, height) == expected


@pytest.mark.parametrize("width", [99, 320, 641, 1000, 1366, 1920, 2559, 3840])
@pytest.mark.parametrize("height", [101, 240, 361, 480, 720, 767, 1080, 2160])
def test_layer_size_even_bounded_and_keeps_aspect(width: int, height: int) -> None:
    for layer in LAYERS:
        w, h = layer_size(layer, width, height)
        assert w % 2 == 0 and h % 2 == 0
        assert h <= max(2, height) and w <= max(2, width)
        assert h <= layer
        # Rounding to even moves each side by at most 1 px (2 for the trimmed source).
        assert abs(w / h - width / height) <= 2.5 / h + 2.5 * width / height / h


def test_layer_size_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        layer_size(360, 0, 720)
    with pytest.raises(ValueError):
        layer_size(0, 1280, 720)


@pytest.mark.parametrize(
    ("layer", "height", "expected"),
    [
        (1080, 1080, 1080),
        (1080, 720, 720),
        (720, 1080, 720),
        (600, 1080, 480),  # not a layer: the largest one below it
        (100, 1080, 360),  # below all: the smallest
        (1080, 240, 360),
        (480, 479, 360),
    ],
)
def test_clamp_layer(layer: int, height: int, expected: int) -> None:
    assert clamp_layer(layer, height) == expected
