"""Writes a sync test clip: a white flash and a beep at the start of every second.

Tests and the A/V sync benchmark stream such a file and then look for each flash and
its beep on the other side. Users can make one too, to check their own setup.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from peer.node.audio.format import FRAME_SAMPLES, SAMPLE_RATE
from peer.node.audio.tone import ToneSource, draw_flash, is_flash

# (container codec name in PyAV, sample format it wants)
AUDIO_CODECS = {"aac": "fltp", "libmp3lame": "s16p", "libopus": "s16", "ac3": "fltp",
                "mp2": "s16"}


def write_sync_clip(path: str, seconds: float, *, fps: int = 30, width: int = 320,
                    height: int = 240, audio_codec: str | None = "aac",
                    video_codec: str = "mpeg4",
                    noise: tuple[int, int] | None = None) -> None:
    """Write ``seconds`` of grey video (a moving bar) flashing white once a second,
    with a 1 kHz beep starting on each flash frame's time.

    Args:
        path: output file; the extension picks the container.
        audio_codec: one of ``AUDIO_CODECS``, or None for a file without sound.
        noise: (width, height) of a patch of fresh random pixels moving across every
            frame: it sets the picture's bit rate (the bar alone is nearly free for
            H.264; 56x32 keeps 720p near 800 kbit/s).
    """
    with av.open(path, "w") as out:
        video = out.add_stream(video_codec, rate=fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio: av.AudioStream | None = None
        if audio_codec is not None:
            added = out.add_stream(audio_codec, rate=SAMPLE_RATE)
            assert isinstance(added, av.AudioStream)
            audio = added
            audio.layout = "stereo"
            audio.format = AUDIO_CODECS[audio_codec]
        frames = round(seconds * fps)
        rng = np.random.default_rng(12)
        if noise is not None:
            video.bit_rate = 20_000_000  # keep the noise (it is the point) for the re-encode
        for index in range(frames):
            image = np.full((height, width, 3), 64, np.uint8)
            x = index * 4 % width
            image[:, x: x + 8] = 160
            if noise is not None:
                nw, nh = noise
                nx = index * 6 % max(1, width - nw)
                image[height // 8: height // 8 + nh, nx: nx + nw] = rng.integers(
                    0, 256, (nh, nw, 3), dtype=np.uint8)
            if is_flash(index, fps):
                draw_flash(image)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None and audio_codec is not None:
            tone = ToneSource(float(fps))
            resampler = av.AudioResampler(format=AUDIO_CODECS[audio_codec], layout="stereo",
                                          rate=SAMPLE_RATE)
            for block_index in range(round(seconds * SAMPLE_RATE / FRAME_SAMPLES)):
                block = av.AudioFrame.from_ndarray(tone.read().reshape(1, -1), format="s16",
                                                   layout="stereo")
                block.sample_rate = SAMPLE_RATE
                block.pts = block_index * FRAME_SAMPLES
                block.time_base = Fraction(1, SAMPLE_RATE)
                for converted in resampler.resample(block):
                    out.mux(audio.encode(converted))
            out.mux(audio.encode(None))
