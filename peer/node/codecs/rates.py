"""The bitrate ladder of the video layers: what each layer of an H.264 stream may cost.

Apart from the encoder (``peer.node.codecs.h264``), because relays size their
children's queues by it and the fan-out sizes the tree by it: neither needs PyAV.
"""

from __future__ import annotations

import functools
from typing import Final

# Bitrate caps at 30 fps by layer. Between the WebRTC simulcast ladder (0.7 / 2.5 / 5
# Mbit/s for 360p / 720p / 1080p) and Jitsi's H.264 defaults (0.8 / 0.8 / 2 / 4): a
# 720p child fits a 5 Mbit/s home uplink twice over.
LAYER_BITRATE_BPS: Final = {360: 600_000, 480: 1_000_000, 720: 2_500_000, 1080: 4_500_000}
REFERENCE_FPS: Final = 30.0
# The VBV buffer in seconds of the cap: short enough that a link never receives more
# than half a second of bits in a burst, long enough that a keyframe is not starved.
VBV_BUFFER_S: Final = 0.5


# Asked for every frame fanned out and on every fan-out tick, for a handful of
# (layer, fps) pairs: each answer is worked out once.
@functools.lru_cache(maxsize=64)
def layer_bitrate(layer: int, fps: float) -> int:
    """The bitrate cap of a layer at a frame rate, in bits per second.

    Args:
        layer: nominal layer height; layers between ladder steps take the next lower
            step's rate (and below 360 the 360 rate).
        fps: frames per second; the rate scales linearly from ``REFERENCE_FPS``.
    """
    steps = [rate for height, rate in sorted(LAYER_BITRATE_BPS.items()) if height <= layer]
    rate = steps[-1] if steps else LAYER_BITRATE_BPS[min(LAYER_BITRATE_BPS)]
    return max(50_000, round(rate * fps / REFERENCE_FPS))
