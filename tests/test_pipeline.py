"""The received-stream pipeline: decode once in order, transcode down, refuse garbage."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from peer.node.codec import CodecError, encode_jpeg
from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec
from peer.node.codecs.h264 import H264Decoder
from peer.node.pipeline import ReceiveJob, ReceivePipeline, ReceiveProcessor, ReceiveResult
from peer.node.recording import Recording


@dataclass(frozen=True)
class Frame:
    seq: int
    prev: int
    layer: int
    width: int
    height: int
    keyframe: bool
    codec: str
    data: bytes
    captured_at: float = 0.0


def picture(index: int, width: int = 640, height: int = 360) -> np.ndarray:
    image = np.full((height, width, 3), 70, np.uint8)
    cv2.circle(image, (40 + index * 9 % (width - 80), height // 2), 30, (0, 200, 255), -1)
    return image


def h264_frames(count: int, layer: int = 360) -> list[Frame]:
    bank = EncoderBank(VideoCodec.H264, 30.0)
    frames = []
    for seq in range(count):
        enc = bank.encode(picture(seq), [layer], seq=seq)[layer]
        frames.append(Frame(seq, enc.prev, layer, enc.width, enc.height, enc.keyframe,
                            "h264", enc.data, seq / 30))
    return frames


def test_decodes_once_and_transcodes_each_lower_layer_with_keyframes_on_request() -> None:
    processor = ReceiveProcessor(30.0)
    frames = h264_frames(4)
    lower = frozenset({180})  # a layer below the received 360 (any positive height works)
    results = [processor.process(ReceiveJob(f, lower, frozenset({180}) if f.seq == 2 else
                                            frozenset(), picture=True)) for f in frames]
    assert all(r is not None for r in results)
    assert processor.decoded == 4
    made = [r.encoded[180] for r in results if r is not None]
    assert [m.keyframe for m in made] == [True, False, True, False]
    assert [m.prev for m in made] == [-1, 0, 1, 2]
    assert (made[0].width, made[0].height) == (320, 180)
    decoder = H264Decoder()
    assert all(decoder.decode(m.data, 320, 180) is not None for m in made)
    assert results[0] is not None and results[0].image is not None


def test_nothing_asked_means_nothing_decoded() -> None:
    processor = ReceiveProcessor(30.0)
    result = processor.process(ReceiveJob(h264_frames(1)[0]))
    assert result is not None and result.image is None and processor.decoded == 0


def test_garbage_and_unknown_codecs_are_codec_errors() -> None:
    processor = ReceiveProcessor(30.0)
    bad = Frame(0, -1, 360, 640, 360, True, "h264", b"\x00\x00\x01\x65" + b"\xff" * 300)
    with pytest.raises(CodecError, match="says it is a keyframe"):
        processor.process(ReceiveJob(bad, picture=True))
    with pytest.raises(CodecError, match="unsupported video codec 'vp8'"):
        processor.process(ReceiveJob(Frame(0, -1, 360, 640, 360, True, "vp8", b"x"),
                                     picture=True))


def test_mjpeg_transcode_without_picture_uses_the_jpeg_fast_path() -> None:
    processor = ReceiveProcessor(30.0)
    jpeg = encode_jpeg(picture(0))
    result = processor.process(ReceiveJob(Frame(0, -1, 360, 640, 360, True, "mjpeg", jpeg),
                                          frozenset({180})))
    assert result is not None and result.encoded[180].keyframe
    assert result.encoded[180].codec is VideoCodec.MJPEG and processor.decoded == 0


def test_h264_is_recorded_as_received_without_decoding(tmp_path: Path) -> None:
    processor = ReceiveProcessor(30.0)
    processor.recording = Recording(str(tmp_path / "rec.mkv"), 30.0)
    for frame in h264_frames(30):
        result = processor.process(ReceiveJob(frame, record=True))
        assert result is not None and result.record_error is None
    assert processor.decoded == 0
    processor.recording.close()
    assert (tmp_path / "rec.mkv").stat().st_size > 1000


def test_mjpeg_is_recorded_from_the_decoded_picture(tmp_path: Path) -> None:
    processor = ReceiveProcessor(30.0)
    processor.recording = Recording(str(tmp_path / "rec.avi"), 30.0)
    for seq in range(5):
        frame = Frame(seq, -1, 360, 640, 360, True, "mjpeg", encode_jpeg(picture(seq)))
        assert processor.process(ReceiveJob(frame, record=True)) is not None
    assert processor.decoded == 5
    processor.recording.close()
    assert (tmp_path / "rec.avi").stat().st_size > 1000


def test_a_failing_recording_is_reported_once_and_dropped(tmp_path: Path) -> None:
    processor = ReceiveProcessor(30.0)
    recording = Recording(str(tmp_path / "rec.mkv"), 30.0)
    processor.recording = recording
    recording.close()  # writing to a closed recording fails like a full disk would
    frames = h264_frames(2)
    first = processor.process(ReceiveJob(frames[0], record=True))
    assert first is not None and first.record_error is not None
    assert processor.recording is None
    second = processor.process(ReceiveJob(frames[1], record=True))
    assert second is not None and second.record_error is None


class SlowProcessor(ReceiveProcessor):
    """Blocks each job until the test lets it go (to fill the backlog on purpose)."""

    def __init__(self) -> None:
        super().__init__(30.0)
        self.gate = threading.Event()
        self.seen: list[int] = []

    def process(self, job: ReceiveJob) -> ReceiveResult | None:
        self.gate.wait(10)
        self.seen.append(job.frame.seq)
        return super().process(job)


async def test_pipeline_keeps_order_refuses_when_behind_and_reports_errors() -> None:
    results: list[int] = []
    errors: list[str] = []
    done = asyncio.Event()
    processor = SlowProcessor()

    def on_result(result: ReceiveResult) -> None:
        results.append(result.frame.seq)
        done.set()

    def on_error(job: ReceiveJob, exc: CodecError) -> None:
        errors.append(str(exc))
        done.set()

    with ThreadPoolExecutor(1) as executor:
        pipeline = ReceivePipeline(executor, processor, on_result=on_result,
                                   on_error=on_error, max_backlog=3)
        frames = h264_frames(6)
        assert pipeline.submit(ReceiveJob(frames[0], picture=True))
        await asyncio.sleep(0)  # let the first job start (it blocks on the gate)
        assert all(pipeline.submit(ReceiveJob(f, picture=True)) for f in frames[1:4])
        assert not pipeline.submit(ReceiveJob(frames[4], picture=True))  # behind: refused
        assert pipeline.backlog == 0 and pipeline.overflows == 1
        processor.gate.set()
        await asyncio.wait_for(done.wait(), 10)
        assert results == [0]  # the waiting jobs were dropped with the refusal
        assert processor.seen == [0]
        bad = Frame(9, -1, 360, 640, 360, True, "h264", b"not h264")
        done.clear()
        assert pipeline.submit(ReceiveJob(bad, picture=True))
        await asyncio.wait_for(done.wait(), 10)
        assert errors and "no start code" in errors[0]
        await pipeline.close()
