"""What this peer records, chosen by the stream's codec at the first frame.

An H.264 stream is recorded as received (``passthrough.H264Recorder``: no decoding,
no quality loss) when the file is Matroska or MP4. Everything else (an MJPEG stream,
or H.264 into .avi/.mov/.m4v) is decoded and re-encoded by OpenCV
(``recorder.Recorder``). The user picks a file before the first frame says which
codec the stream uses, so the choice is made at that frame; after it, ``picture``
says whether the recording needs decoded pictures at all.

Both kinds write from the receive pipeline's worker, one frame at a time in order.
"""

from __future__ import annotations

import os
import threading
from typing import Final

from peer.node.errors import MediaError
from peer.node.passthrough import FORMAT_BY_EXTENSION, H264Recorder
from peer.node.picture import Image
from peer.node.recorder import FOURCC_BY_EXTENSION, Recorder

# H.264 is recorded as received only into these containers.
PASSTHROUGH_EXTENSIONS: Final = frozenset(FORMAT_BY_EXTENSION)


class Recording:
    """One recording to ``path``; the writer is picked at the first frame.

    Args:
        path: the file (.mkv, .mp4, .mov, .m4v, .avi).
        fps: the stream's frame rate.
        audio: also record the stream's sound (H.264 passthrough files only).

    Raises:
        MediaError: unsupported extension, missing folder, not writable (checked now,
            so the user hears at once).
    """

    def __init__(self, path: str, fps: float, *, audio: bool = False) -> None:
        # Recorder checks the extension and the folder; it opens nothing yet.
        self._decoded = Recorder(path, fps)
        self.path = path
        self._fps = fps
        self._audio = audio
        self._extension = os.path.splitext(path)[1].lower()
        self._passthrough: H264Recorder | None = None
        self._codec: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def fps(self) -> float:
        """The stream's frame rate (learnt from the parent after the file was chosen)."""
        return self._fps

    @fps.setter
    def fps(self, fps: float) -> None:
        self._fps = fps
        self._decoded.fps = fps

    @property
    def passthrough(self) -> H264Recorder | None:
        """The H.264 writer once chosen (the audio track writes through it)."""
        return self._passthrough

    def picture(self, codec: str) -> bool:
        """Whether frames of ``codec`` must be decoded for this recording."""
        return not (codec == "h264" and self._extension in PASSTHROUGH_EXTENSIONS)

    def write_frame(self, codec: str, data: bytes, *, keyframe: bool, width: int,
                    height: int, captured_at: float) -> bool:
        """Record a frame as received when this recording takes it that way.

        Returns:
            True when written (or skipped waiting for a keyframe) as received; False
            when the recording wants the decoded picture instead (``write_picture``).

        Raises:
            MediaError: writing failed; the recording is closed.
        """
        with self._lock:
            if self._closed:
                raise MediaError(f"recording to {self.path} is already closed")
            if self._codec is None:
                self._codec = codec
                if not self.picture(codec):
                    self._passthrough = H264Recorder(self.path, self._fps, audio=self._audio)
            elif codec != self._codec:
                raise MediaError(f"the stream changed codec ({self._codec} to {codec}) "
                                 f"during the recording to {self.path}")
            writer = self._passthrough
        if writer is None:
            return False
        writer.write(data, keyframe=keyframe, width=width, height=height,
                     captured_at=captured_at)
        return True

    def write_picture(self, image: Image) -> None:
        """Record a decoded picture (the re-encoding writer).

        Raises:
            MediaError: writing failed.
        """
        self._decoded.write(image)

    def close(self) -> None:
        """Finish the file. Idempotent.

        Raises:
            MediaError: finishing failed (what was written stays playable).
        """
        with self._lock:
            self._closed = True
        self._decoded.close()
        if self._passthrough is not None:
            self._passthrough.close()


__all__ = ["FOURCC_BY_EXTENSION", "PASSTHROUGH_EXTENSIONS", "Recording"]
