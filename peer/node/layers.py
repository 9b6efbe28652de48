"""Resolution layers: which frame heights a source offers and the exact frame size of each.

A layer is named by its nominal height (``protocol.limits.LAYERS``). The real frame
size keeps the source's aspect ratio, never upscales, and is even in both dimensions:
JPEG's 4:2:0 chroma subsampling and the MPEG-4 writers of the recorder work in 2x2
blocks, and an odd size makes them pad or refuse.
"""

from __future__ import annotations

import functools

from protocol.limits import LAYERS


def _check_size(source_width: int, source_height: int) -> None:
    if source_width <= 0 or source_height <= 0:
        raise ValueError(f"source size must be positive, got {source_width}x{source_height}")


def _even(value: float) -> int:
    """Nearest even integer, at least 2 (a 1-pixel-wide frame is still a frame)."""
    return max(2, 2 * round(value / 2))


def _even_down(value: int) -> int:
    """Largest even integer <= value (at least 2): trimming never upscales."""
    return max(2, value - value % 2)


@functools.lru_cache(maxsize=32)  # pure, and asked every tick per link: cache
def available_layers(source_height: int) -> tuple[int, ...]:
    """Layers a source of this height can offer, smallest first.

    Args:
        source_height: frame height of the source in pixels.

    Returns:
        The layers not above the source height; ``(LAYERS[0],)`` for sources smaller
        than the smallest layer, so every source offers at least one layer (served at
        the source's own size, since layers never upscale).
    """
    layers = tuple(layer for layer in LAYERS if layer <= source_height)
    return layers or (LAYERS[0],)


def layer_size(layer: int, source_width: int, source_height: int) -> tuple[int, int]:
    """Frame size of a layer cut from a source of the given size.

    Args:
        layer: nominal layer height (any positive number; need not be in LAYERS).
        source_width: source frame width in pixels.
        source_height: source frame height in pixels.

    Returns:
        ``(width, height)``: height is ``min(layer, source_height)``, width keeps the
        aspect ratio; both rounded to even numbers.

    Raises:
        ValueError: a non-positive layer or source size.
    """
    _check_size(source_width, source_height)
    if layer <= 0:
        raise ValueError(f"layer must be positive, got {layer}")
    if layer >= source_height:
        # The source itself (never upscaled); an odd dimension loses one pixel row/column.
        return _even_down(source_width), _even_down(source_height)
    height = _even(layer)
    width = _even(source_width * height / source_height)
    return min(width, _even_down(source_width)), height


@functools.lru_cache(maxsize=256)  # pure; bounded (a peer names any layer)
def clamp_layer(layer: int, source_height: int) -> int:
    """The layer to serve when ``layer`` is asked of a source of this height.

    Args:
        layer: the requested layer (nominal height).
        source_height: frame height of the source in pixels.

    Returns:
        The largest available layer not above ``layer``, or the smallest available
        layer when ``layer`` is below all of them.
    """
    available = available_layers(source_height)
    fitting = [candidate for candidate in available if candidate <= layer]
    return max(fitting) if fitting else available[0]
