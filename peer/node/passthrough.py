"""Record a received H.264 stream as it came: no decoding, no re-encoding.

The access units the parent sent are muxed into Matroska (``.mkv``) or fragmented
MP4 (``.mp4``) by PyAV, so a recording costs almost no CPU and loses no quality.

Both containers are written so that a killed process leaves a playable file:

* Matroska is written cluster by cluster, a new cluster at least every
  ``CLUSTER_MS``, and every packet is flushed to the file as it is muxed; after a
  ``kill -9`` the file plays up to the last complete cluster (its header carries no
  duration, so players compute it from the clusters).
* MP4 uses an empty ``moov`` and a fragment at least every ``CLUSTER_MS`` (a plain MP4
  writes its index only at the end: a killed one is unplayable).

A recording starts at a keyframe (it carries the SPS and PPS, which also become the
track's codec private data); frames before it are skipped. Timestamps come from the
frames' capture times, so the file's duration is the time recorded even when frames
were lost on the way. A write that fails (disk full, file size limit, I/O error) raises
one :class:`~peer.node.errors.MediaError`; the recorder is then closed and what was
written before stays playable.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from fractions import Fraction
from typing import Final

import av
import av.error

from peer.node.audio import mux
from peer.node.errors import MediaError
from protocol.h264 import NAL_PPS, NAL_SPS, split_nals

# How much video a killed recording may lose at most (the cluster/fragment in memory).
CLUSTER_MS: Final = 500
_TIME_BASE: Final = Fraction(1, 1000)
FORMAT_BY_EXTENSION: Final = {".mkv": "matroska", ".mp4": "mp4"}
_OPTIONS: Final = {
    "matroska": {"flush_packets": "1", "cluster_time_limit": str(CLUSTER_MS)},
    "mp4": {"flush_packets": "1",
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(CLUSTER_MS * 1000)},
}
_DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def _headers(data: bytes) -> bytes:
    """The SPS and PPS of a keyframe, in Annex B form (FFmpeg turns them into avcC)."""
    nals = [n for n in split_nals(data) if n[0] & 0x1F in (NAL_SPS, NAL_PPS)]
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def _explain(path: str, exc: Exception) -> str:
    code = getattr(exc, "errno", None)
    if code in _DISK_FULL:
        return f"disk full while recording to {path}"
    return f"cannot write recording {path}: {exc}"


class H264Recorder:
    """Appends received H.264 access units to a Matroska or fragmented MP4 file.

    Thread-safe (a lock around the muxer): ``write`` may run in a worker thread.

    Args:
        path: the file; ``.mkv`` or ``.mp4``. Opened (created) at the first keyframe.
        fps: the stream's frame rate (the duration of the last frame).

    Attributes:
        frames_written: access units muxed so far.
        skipped: frames dropped while waiting for the first keyframe.
        size: ``(width, height)`` of the first keyframe, None before.
        duration_s: time from the first frame written to the end of the last one.
    """

    def __init__(self, path: str, fps: float, *, audio: bool = False) -> None:
        extension = path[path.rfind("."):].lower() if "." in path else ""
        container_format = FORMAT_BY_EXTENSION.get(extension)
        if container_format is None:
            raise MediaError(f"H.264 is recorded as-is only to .mkv or .mp4, not {path}")
        self.path = path
        self.fps = fps
        self._format = container_format
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        # The Opus track (``audio``): received packets as they are, on the video's clock.
        self._audio = audio
        self._audio_stream: object | None = None
        self._last_audio_pts = -1
        self.audio_written = 0
        self._first_at: float | None = None
        self._last_pts = -1
        self._frame_ms = max(1, round(1000 / fps))
        self._lock = threading.Lock()
        self._closed = False
        self.frames_written = 0
        self.skipped = 0
        self.size: tuple[int, int] | None = None

    @property
    def duration_s(self) -> float:
        """Seconds of video written (first frame to the end of the last one)."""
        return 0.0 if self._last_pts < 0 else (self._last_pts + self._frame_ms) / 1000

    def write(self, data: bytes, *, keyframe: bool, width: int, height: int,
              captured_at: float) -> None:
        """Append one access unit.

        Args:
            data: the H.264 access unit as received (Annex B).
            keyframe: whether it is a keyframe (the first one written must be).
            width: picture width (the track's, from the first keyframe).
            height: picture height.
            captured_at: capture time on the root's clock, seconds.

        Raises:
            MediaError: the recorder is closed, or writing failed (disk full, I/O
                error); after the error it is closed and the file stays playable.
        """
        with self._lock:
            if self._closed:
                raise MediaError(f"recording to {self.path} is already closed")
            if self._container is None:
                if not keyframe:
                    self.skipped += 1
                    return
                self._open(data, width, height)
                self._first_at = captured_at
            assert self._stream is not None and self._first_at is not None
            pts = max(self._last_pts + 1, round((captured_at - self._first_at) * 1000))
            packet = av.Packet(data)
            packet.stream = self._stream
            packet.time_base = _TIME_BASE
            packet.pts = packet.dts = pts
            packet.duration = self._frame_ms
            packet.is_keyframe = keyframe
            try:
                assert self._container is not None
                self._container.mux(packet)
            except (av.error.FFmpegError, OSError) as exc:
                self._abandon()
                raise MediaError(
                    f"{_explain(self.path, exc)}; recording stopped, the "
                    f"{self.duration_s:.1f} s written before stay playable") from exc
            self._last_pts = pts
            self.frames_written += 1

    def write_audio(self, packet: bytes, captured_at: float) -> None:
        """Append one Opus packet captured at ``captured_at`` (root's clock). Packets
        before the first keyframe (nothing to sync them to yet) are skipped.

        Raises:
            MediaError: writing failed (as for ``write``).
        """
        with self._lock:
            if self._closed or self._audio_stream is None or self._first_at is None:
                return
            pts = round((captured_at - self._first_at) / mux.TIME_BASE)
            if pts < 0 or pts <= self._last_audio_pts:
                return  # before the picture started, or a duplicate
            try:
                assert self._container is not None
                self._container.mux(mux.opus_packet(self._audio_stream, packet, pts))
            except (av.error.FFmpegError, OSError) as exc:
                self._abandon()
                raise MediaError(
                    f"{_explain(self.path, exc)}; recording stopped, the "
                    f"{self.duration_s:.1f} s written before stay playable") from exc
            self._last_audio_pts = pts
            self.audio_written += 1

    def _open(self, keyframe: bytes, width: int, height: int) -> None:
        try:
            container = av.open(self.path, "w", format=self._format,
                                options=dict(_OPTIONS[self._format]))
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(_explain(self.path, exc)) from exc
        stream = container.add_stream("h264")
        stream.width, stream.height = width, height
        stream.time_base = _TIME_BASE
        stream.codec_context.extradata = _headers(keyframe)
        if self._audio:
            self._audio_stream = mux.add_opus_track(container)
        self._container, self._stream = container, stream
        self.size = (width, height)

    def _abandon(self) -> None:
        """Close after a failed write; the trailer may fail too (the disk is full)."""
        self._closed = True
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                container.close()

    def close(self) -> None:
        """Finish the file (cues, duration). Idempotent.

        Raises:
            MediaError: writing the end of the file failed (the clusters before stay
                playable).
        """
        with self._lock:
            self._closed = True
            container, self._container = self._container, None
            if container is None:
                return
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                raise MediaError(_explain(self.path, exc)) from exc

    def __enter__(self) -> H264Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
