"""The recording's audio track: received Opus packets muxed as they are (no decoding).

Matroska and MP4 both carry Opus; the track needs the ``OpusHead`` of RFC 7845 as its
codec private data. Its pre-skip is 0: packets are already stamped with the time of the
first sample they decode to (``opus.OpusEncoder.stamp``), so players must not shift
them again.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Any, Final

import av

from peer.node.audio.format import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE

TIME_BASE: Final = Fraction(1, SAMPLE_RATE)


def opus_head(channels: int = CHANNELS, pre_skip: int = 0) -> bytes:
    """RFC 7845 5.1: magic, version 1, channels, pre-skip, input rate, gain 0, family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, SAMPLE_RATE, 0, 0)


def add_opus_track(container: Any) -> Any:
    """Declare an Opus track in an output container (before anything is muxed)."""
    stream = container.add_stream("libopus", rate=SAMPLE_RATE)
    stream.layout = "stereo"
    stream.time_base = TIME_BASE
    stream.codec_context.extradata = opus_head()
    return stream


def opus_packet(stream: Any, data: bytes, pts: int) -> Any:
    """A packet of ``data`` for ``stream`` at ``pts`` (in samples at 48 kHz)."""
    packet = av.Packet(data)
    packet.stream = stream
    packet.time_base = TIME_BASE
    packet.pts = packet.dts = pts
    packet.duration = FRAME_SAMPLES
    return packet
