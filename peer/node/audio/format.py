"""The one audio format Treecast sends: Opus, 48 kHz stereo, 20 ms packets.

A fixed format keeps relays and receivers free of negotiation: every source is
resampled to it at the streamer, every receiver decodes it the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeAlias

if TYPE_CHECKING:  # relays and silent viewers never touch PCM: they do not import numpy
    import numpy as np
    import numpy.typing as npt

# Opus runs internally at 48 kHz; any other rate would be resampled inside libopus.
SAMPLE_RATE: Final = 48_000
CHANNELS: Final = 2
# 20 ms: the Opus default and WebRTC's choice. Shorter frames cost more header and
# packets per second (the link rate limit counts messages); longer ones add latency.
FRAME_SAMPLES: Final = 960
FRAME_S: Final = FRAME_SAMPLES / SAMPLE_RATE
# 64 kbit/s stereo is transparent for most material with Opus' CELT mode (the issue
# asks for 64-96); a 20 ms packet is then about 160 bytes.
BITRATE_BPS: Final = 64_000

# One 20 ms block of interleaved 16-bit PCM: shape (FRAME_SAMPLES, CHANNELS).
Pcm: TypeAlias = "npt.NDArray[np.int16]"


def silence(samples: int = FRAME_SAMPLES) -> Pcm:
    """A block of digital silence."""
    import numpy as np  # only a player calls this (see the import above)

    return np.zeros((samples, CHANNELS), np.int16)
