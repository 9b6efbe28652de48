"""The streamer's pump: captured pictures in, encoded frames out to the relay.

Theory of operation
-------------------
``PacedCapture`` releases pictures in real time (dropping when we are late). For each
one the pump numbers it (one ``seq`` for every layer, so a layer change never looks
like loss), hands the picture to the display worker as the local preview (the
conversion for the screen happens there, off the loop), asks the relay which layers
the children get, encodes exactly those in the thread pool and fans each one out.
With no children nothing is encoded.

The pump ends when the source ends, fails, or the streamer lease runs out; it then
calls ``on_end`` with a ``StreamEnd`` saying why. Stopping it (``stop``) does not
call ``on_end``: whoever stops it knows why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peer.node.codecs.base import VideoCodec
from peer.node.display import Display, Picture
from peer.node.errors import MediaError
from peer.node.events import StreamEndReason
from peer.node.relay import Relay
from peer.node.stats import StreamStats
from protocol import VideoFrame

if TYPE_CHECKING:
    # Only a streamer runs a pump: the capture and the encoders (OpenCV, numpy, PyAV)
    # are imported when it starts one (see peer.node.broadcast).
    from peer.node.media import CapturedFrame, PacedCapture

# Progress events (position in the file) at most this often.
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """A stream's end: why, and for a failure the error's text."""

    reason: StreamEndReason
    detail: str | None = None

    @property
    def text(self) -> str:
        return self.detail or self.reason.value


class StreamPump:
    """Runs one stream from a started capture until it ends.

    Args:
        capture: the paced capture (already started).
        relay: the children and their layers.
        display: where the preview goes.
        executor: where encoding runs.
        stats: counts produced frames.
        epoch: the stream's epoch (stamped on every frame).
        lease_valid: False once our streamer lease ran out (the pump stops).
        on_progress: (position_s, duration_s) at most every PROGRESS_INTERVAL_S.
        on_released: (captured_at, position_s) of every picture (the sound follows it).
        on_end: called once when the stream ends by itself.
        codec: the stream's video codec (every layer uses it).
        fps: the source's frame rate (H.264 rate budgets and time base).
    """

    def __init__(
        self,
        capture: PacedCapture,
        relay: Relay,
        display: Display,
        executor: Executor,
        stats: StreamStats,
        *,
        epoch: int,
        lease_valid: Callable[[], bool],
        on_progress: Callable[[float, float | None], None],
        on_released: Callable[[float, float], None],
        on_end: Callable[[StreamEnd], None],
        codec: VideoCodec = VideoCodec.H264,
        fps: float = 30.0,
    ) -> None:
        self.capture = capture
        self.codec = codec
        # One encoder per layer size, kept from frame to frame (H.264 is stateful);
        # touched only by the encode jobs, which run one at a time.
        from peer.node.codecs.bank import EncoderBank

        self._bank = EncoderBank(codec, fps)
        self.keyframes = 0
        self.epoch = epoch
        self.seq = 0
        self._relay = relay
        self._display = display
        self._executor = executor
        self._stats = stats
        self._lease_valid = lease_valid
        self._on_progress = on_progress
        self._on_released = on_released
        self._on_end = on_end
        self._task: asyncio.Task[None] = asyncio.create_task(self._run(), name="node-stream")

    async def _run(self) -> None:
        last_progress = 0.0
        end = StreamEnd(StreamEndReason.FINISHED)
        try:
            async for frame in self.capture.frames():
                if not self._lease_valid():
                    end = StreamEnd(StreamEndReason.LOCK_LOST)
                    break
                await self._send(frame)
                if frame.captured_at - last_progress >= PROGRESS_INTERVAL_S:
                    last_progress = frame.captured_at
                    self._on_progress(frame.position_s, frame.duration_s)
        except MediaError as exc:
            end = StreamEnd(StreamEndReason.SOURCE_FAILED, str(exc))
        self._on_end(end)

    async def _send(self, frame: CapturedFrame) -> None:
        seq = self.seq
        self.seq += 1
        self._on_released(frame.captured_at, frame.position_s)
        if self._display.shows:
            self._display.show(Picture(None, frame.image, seq, self.epoch, frame.captured_at))
        wanted = self._relay.layers(None)
        if wanted:
            now = time.monotonic()
            keyframes = self._relay.keyframes_due(wanted, now)
            encoded = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._bank.encode, frame.image, wanted, keyframes, seq)
            for layer, enc in encoded.items():
                if enc.keyframe:
                    self.keyframes += 1
                    self._relay.throttle.keyframe_made(layer, now)
                self._relay.fan_out(self._relay.sign_own(VideoFrame(
                    self.epoch, seq, frame.captured_at, enc.width, enc.height, layer,
                    enc.data, codec=enc.codec.value, keyframe=enc.keyframe,
                    prev=enc.prev)), None)
        # Nothing comes in at the root: its bandwidth is what it sends (kbps_out).
        self._stats.frame_produced(time.time(), 0, seq)

    async def stop(self) -> None:
        """Stop capturing and wait for the pump to end (``on_end`` is not called)."""
        self.capture.stop()
        if self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Encoders go last: a cancelled task's encode job may still be running.
        self._bank.close()
