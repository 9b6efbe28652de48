"""A relay's and viewer's received stream: decoded once, in order, then transcoded down.

Theory of operation
-------------------
H.264 frames only decode in order, each after the one before it on its chain. So
everything this peer does with the pictures of the stream it receives happens in one
place, one frame after the other, off the event loop:

1. decode the received frame (once, whatever needs the picture);
2. encode every lower layer some child needs from that picture (one encoder per
   size, shared by every child on that layer; keyframes where asked);
3. record it (``Recording``: an H.264 stream as received, before decoding, needing
   no picture; anything else from the decoded picture);
4. hand the picture to the display (the caller does that with the result).

:class:`ReceiveProcessor` is that work, synchronous and single-threaded.
:class:`ReceivePipeline` runs it in a thread pool for the event loop: jobs run in
submission order, one at a time. The decoder must see every frame of its chain, so
nothing is skipped silently: when the backlog passes ``MAX_BACKLOG`` frames (this
peer's CPU cannot keep up), ``submit`` refuses, the caller breaks its chain and asks
its parent for a keyframe. MJPEG frames are all keyframes, so for them this is only
a skip to the newest frame.

A frame the decoder refuses (garbage, a picture of another size than announced)
comes back through ``on_error``: the caller closes the link it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from peer.node.codecs.base import EncodedFrame, PictureDecoder, VideoCodec, parse_codec
from peer.node.errors import MediaError
from peer.node.picture import CodecError, Image

if TYPE_CHECKING:
    # The decoders, encoders and recorders (OpenCV, numpy, PyAV) are imported when the
    # first frame needs one: a peer that only forwards what it receives never does.
    from peer.node.codecs.bank import EncoderBank
    from peer.node.recording import Recording

log = logging.getLogger(__name__)

# Frames waiting for the decoder: at 30 fps, 270 ms. Frames arrive in bursts (a link
# that stalled for a moment delivers several at once), so a few waiting is normal;
# behind by more than this, this peer is too slow for the stream, and skipping to a
# keyframe beats falling further behind.
MAX_BACKLOG: Final = 8


class CodedFrame(Protocol):
    """What the pipeline reads of a received frame (protocol.VideoFrame has it all)."""

    @property
    def seq(self) -> int: ...
    @property
    def prev(self) -> int: ...
    @property
    def layer(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def keyframe(self) -> bool: ...
    @property
    def codec(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def captured_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ReceiveJob:
    """One received frame and what to make of it.

    Attributes:
        frame: the frame as received (its chain already checked by the caller).
        lower: layers to encode from its picture (children on lower layers).
        keyframes: those of ``lower`` that must be keyframes.
        picture: whether the display wants the decoded picture.
        record: write it to the processor's recording (when it has one).
    """

    frame: CodedFrame
    lower: frozenset[int] = frozenset()
    keyframes: frozenset[int] = frozenset()
    picture: bool = False
    record: bool = False


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    """What a job made.

    Attributes:
        frame: the job's frame.
        image: the decoded picture when the job asked for it, else None.
        encoded: ``{layer: EncodedFrame}`` for the job's lower layers.
        record_error: the recording failed on this frame (it is closed and dropped).
    """

    frame: CodedFrame
    image: Image | None = field(repr=False)
    encoded: dict[int, EncodedFrame]
    record_error: MediaError | None = None


class ReceiveProcessor:
    """Decode and transcode one received stream, one frame at a time, in order.

    Args:
        fps: the stream's frame rate (H.264 rate budgets of the lower layers).
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._decoder: PictureDecoder | None = None
        self._decoding: tuple[VideoCodec, int] | None = None
        self._bank: EncoderBank | None = None
        self.decoded = 0
        # Set from the event loop (a user starts or stops recording); read once per job.
        self.recording: Recording | None = None

    def process(self, job: ReceiveJob) -> ReceiveResult | None:
        """Run one job.

        Returns:
            The result; None when the decoder waits for a keyframe (nothing to show).

        Raises:
            CodecError: an unknown codec, or a frame its decoder refuses.
        """
        frame = job.frame
        stream_codec = parse_codec(frame.codec)
        recording = self.recording if job.record else None
        record_error: MediaError | None = None
        record_picture = False
        if recording is not None:
            try:
                record_picture = not recording.write_frame(
                    frame.codec, frame.data, keyframe=frame.keyframe, width=frame.width,
                    height=frame.height, captured_at=frame.captured_at)
            except MediaError as exc:
                record_error, recording = exc, None
                self.recording = None
        if not job.lower and not job.picture and not record_picture:
            return ReceiveResult(frame, None, {}, record_error)
        if stream_codec is VideoCodec.MJPEG and not job.picture and not record_picture:
            # Reduced-size JPEG decode when every target is small (libjpeg's fast path).
            from peer.node.codec import transcode_down

            jpegs = transcode_down(frame.data, frame.width, frame.height, job.lower)
            return ReceiveResult(frame, None, {
                layer: EncodedFrame(layer, e.width, e.height, e.jpeg, True, VideoCodec.MJPEG)
                for layer, e in jpegs.items()}, record_error)
        picture = self._decoder_for(stream_codec, frame.layer).decode(
            frame.data, frame.width, frame.height)
        if picture is None:
            if frame.keyframe:
                raise CodecError("frame says it is a keyframe but its decoder cannot start there")
            return None
        self.decoded += 1
        if record_picture and recording is not None:
            try:
                recording.write_picture(picture.image)
            except MediaError as exc:
                record_error = exc
                self.recording = None
        encoded = {}
        if job.lower:
            bank = self._bank_for(stream_codec)
            encoded = bank.encode(picture.image, job.lower, job.keyframes, frame.seq)
        return ReceiveResult(frame, picture.image if job.picture else None, encoded,
                             record_error)

    def _decoder_for(self, stream_codec: VideoCodec, layer: int) -> PictureDecoder:
        # A layer switch starts a new chain (at a keyframe): a fresh decoder for it.
        if self._decoder is None or self._decoding != (stream_codec, layer):
            if self._decoder is not None:
                self._decoder.close()
            from peer.node.codecs.decoders import make_decoder

            self._decoder = make_decoder(stream_codec)
            self._decoding = (stream_codec, layer)
        return self._decoder

    def _bank_for(self, stream_codec: VideoCodec) -> EncoderBank:
        if self._bank is None or self._bank.codec is not stream_codec:
            if self._bank is not None:
                self._bank.close()
            from peer.node.codecs.bank import EncoderBank

            self._bank = EncoderBank(stream_codec, self.fps)
        return self._bank

    def reset(self) -> None:
        """Forget the stream (a new parent or stream): the next frame must be a keyframe."""
        if self._decoder is not None:
            self._decoder.close()
        self._decoder = None
        self._decoding = None

    def close(self) -> None:
        """Free the decoder and encoders. Idempotent."""
        self.reset()
        if self._bank is not None:
            self._bank.close()
            self._bank = None


class ReceivePipeline:
    """Runs a :class:`ReceiveProcessor` in a thread pool, in submission order.

    Args:
        executor: where the work runs.
        processor: the work (touched only by the pipeline's jobs once submitted to).
        on_result: called on the loop with each result.
        on_error: called on the loop with the job and the CodecError it raised.
        max_backlog: jobs that may wait; ``submit`` refuses beyond it.
    """

    def __init__(
        self,
        executor: Executor,
        processor: ReceiveProcessor,
        *,
        on_result: Callable[[ReceiveResult], None],
        on_error: Callable[[ReceiveJob, CodecError], None],
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self._executor = executor
        self.processor = processor
        self._on_result = on_result
        self._on_error = on_error
        self._max_backlog = max_backlog
        self._jobs: deque[ReceiveJob] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.overflows = 0

    @property
    def backlog(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return len(self._jobs)

    def submit(self, job: ReceiveJob) -> bool:
        """Queue a job behind the others.

        Returns:
            False when the backlog is full: the job and every waiting one are dropped
            (the caller's chain is broken: it waits for a keyframe and asks for one).
        """
        if len(self._jobs) >= self._max_backlog:
            self._jobs.clear()
            self.overflows += 1
            return False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="receive-pipeline")
        self._jobs.append(job)
        self._wakeup.set()
        return True

    def clear(self) -> None:
        """Drop waiting jobs (a new parent or stream)."""
        self._jobs.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job = self._jobs.popleft()
            try:
                result = await loop.run_in_executor(self._executor, self.processor.process, job)
            except CodecError as exc:
                self._jobs.clear()  # later frames of a broken chain cannot decode
                self._on_error(job, exc)
                continue
            if result is not None:
                self._on_result(result)

    async def close(self) -> None:
        """Stop; waits for the running job's task (its executor work finishes)."""
        self._jobs.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.processor.close()
