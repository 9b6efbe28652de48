"""A still preview of a source before going live, and an early check that it works.

The streamer screen opens the chosen source on a worker thread, takes its first
picture and closes it again. A file that is not a video is reported right when it is
picked (not at "Go live"), and the picture shows what the room will see.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage

from peer.gui.bridge._threads import queued
from peer.gui.bridge.frames import frame_to_qimage
from peer.node.config import PatternSource, SourceSpec
from peer.node.errors import MediaError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source gave when it was tried.

    Attributes:
        spec: the source asked for.
        image: its first picture.
        width / height: the picture size in pixels.
        fps: the rate it plays at.
        duration_s: a file's length, None for live sources.
    """

    spec: SourceSpec
    image: QImage = field(repr=False)
    width: int
    height: int
    fps: float
    duration_s: float | None


def _try_source(spec: SourceSpec) -> SourceInfo:
    """Open, read one frame, close (blocking: a worker thread calls this).

    Raises:
        MediaError: the source cannot be opened or gives no picture.
    """
    from peer.node.media import open_source  # cv2: loaded only when a preview is wanted

    source = open_source(spec)
    try:
        if isinstance(spec, PatternSource):
            source.read()  # frame 0 is the pattern's once-a-second white flash
        image = source.read()
        if image is None:
            raise MediaError("the source gave no picture")
        return SourceInfo(spec, frame_to_qimage(image), source.width, source.height,
                          source.fps, source.duration_s)
    finally:
        source.close()


class SourcePreview(QObject):
    """Tries sources on a worker thread; only the latest question is answered.

    Signals:
        previewed(SourceInfo): the latest source opened and gave this picture.
        failed(object, str): the latest source (spec) cannot be used, and why.
    """

    previewed = pyqtSignal(object)
    failed = pyqtSignal(object, str)
    _answer_posted = pyqtSignal(int, object, object)

    def __init__(
        self,
        opener: Callable[[SourceSpec], SourceInfo] | None = None,
        parent: QObject | None = None,
    ) -> None:
        """Args:
        opener: blocking spec -> SourceInfo (raises MediaError); tests pass a fake.
        parent: Qt parent.
        """
        super().__init__(parent)
        self._opener = opener or _try_source
        self._generation = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        queued(self._answer_posted, self._on_answer)

    def check(self, spec: SourceSpec) -> None:
        """Try ``spec``; answers to earlier questions are dropped."""
        self._generation += 1
        generation = self._generation
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="treecast-preview"
            )
        opener = self._opener

        def run() -> None:
            result: Any
            try:
                result = opener(spec)
            except MediaError as exc:
                result = str(exc)
            except Exception as exc:  # an OpenCV surprise must not kill the worker
                log.warning("previewing %r failed", spec, exc_info=True)
                result = f"cannot open the source ({type(exc).__name__}: {exc})"
            with contextlib.suppress(RuntimeError):  # the preview was deleted meanwhile
                self._answer_posted.emit(generation, spec, result)

        self._pool.submit(run)

    def cancel(self) -> None:
        """Forget the question in flight."""
        self._generation += 1

    def close(self) -> None:
        """Stop the worker thread (after the source it is opening, if any)."""
        self.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @pyqtSlot(int, object, object)
    def _on_answer(self, generation: int, spec: SourceSpec, result: object) -> None:
        if generation != self._generation:
            return
        if isinstance(result, SourceInfo):
            self.previewed.emit(result)
        else:
            self.failed.emit(spec, str(result))
