"""Opus encode and decode through PyAV (libopus, bundled with the ``av`` wheel).

The encoder runs in libopus' ``lowdelay`` mode (CELT only): its look-ahead is 2.5 ms
(pre-skip 120 samples) instead of 6.5 ms, and the decoder does not need the Opus
header to skip it. The streamer accounts for it instead: a packet is stamped with
the capture time of the first sample its *decoded* output holds, so receivers need no
knowledge of the encoder (see ``AudioEncoder.stamp``).
"""

from __future__ import annotations

from typing import Final

import av
import numpy as np

from peer.node.audio.format import BITRATE_BPS, CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, Pcm
from peer.node.errors import MediaError

# libopus' pre-skip in lowdelay mode at 48 kHz (its OpusHead says 120; tested).
ENCODER_DELAY_SAMPLES: Final = 120
ENCODER_DELAY_S: Final = ENCODER_DELAY_SAMPLES / SAMPLE_RATE


class AudioDecodeError(MediaError):
    """Bytes that do not decode as Opus (from a neighbour: a reason to drop the link)."""


class OpusEncoder:
    """Encodes 20 ms blocks of 48 kHz stereo s16 PCM into Opus packets.

    Args:
        bitrate_bps: target bit rate (constrained VBR, libopus' default).
    """

    def __init__(self, bitrate_bps: int = BITRATE_BPS) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = SAMPLE_RATE
        ctx.layout = "stereo"
        ctx.format = "s16"
        ctx.bit_rate = bitrate_bps
        ctx.options = {"application": "lowdelay", "frame_duration": "20"}
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: Pcm) -> bytes:
        """One packet for one block of ``FRAME_SAMPLES`` samples.

        Raises:
            ValueError: the block has the wrong shape.
        """
        if pcm.shape != (FRAME_SAMPLES, CHANNELS):
            raise ValueError(f"expected a ({FRAME_SAMPLES}, {CHANNELS}) block, got {pcm.shape}")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, np.int16).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        packets = self._ctx.encode(frame)
        # libopus emits exactly one packet per 20 ms input frame (no reordering).
        return b"".join(bytes(p) for p in packets)

    @staticmethod
    def stamp(captured_at: float) -> float:
        """The capture time to send with the packet of the block captured at
        ``captured_at``: its decoded output starts ``ENCODER_DELAY_S`` earlier."""
        return captured_at - ENCODER_DELAY_S


class OpusDecoder:
    """Decodes Opus packets (in order) into 20 ms blocks of 48 kHz stereo s16 PCM."""

    def __init__(self) -> None:
        self._ctx = self._open()

    @staticmethod
    def _open() -> av.AudioCodecContext:
        ctx = av.CodecContext.create("opus", "r")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = SAMPLE_RATE
        ctx.layout = "stereo"
        return ctx

    def decode(self, packet: bytes) -> Pcm:
        """The PCM of one packet (a packet of another duration is cut or padded to 20 ms).

        Raises:
            AudioDecodeError: the bytes are not a decodable Opus packet.
        """
        if not packet:
            # An empty packet would flush (end) the decoder, not conceal a frame.
            raise AudioDecodeError("empty Opus packet")
        try:
            frames = self._ctx.decode(av.Packet(packet))
        except (av.FFmpegError, ValueError) as exc:
            # The decoder's state is suspect after garbage: start the next one clean.
            self._ctx = self._open()
            raise AudioDecodeError(f"undecodable Opus packet ({len(packet)} bytes): {exc}") \
                from exc
        if not frames:
            self._ctx = self._open()
            raise AudioDecodeError(f"Opus packet of {len(packet)} bytes decoded to nothing")
        planes = np.concatenate([f.to_ndarray() for f in frames], axis=1)  # (ch, n) float
        if planes.shape[0] == 1:
            planes = np.repeat(planes, CHANNELS, axis=0)
        samples = np.clip(planes[:CHANNELS].T * 32767.0, -32768, 32767).astype(np.int16)
        if len(samples) != FRAME_SAMPLES:
            fixed = np.zeros((FRAME_SAMPLES, CHANNELS), np.int16)
            n = min(FRAME_SAMPLES, len(samples))
            fixed[:n] = samples[:n]
            samples = fixed
        return samples

    def reset(self) -> None:
        """Forget the stream's state (a new stream or a long gap follows)."""
        self._ctx = self._open()
