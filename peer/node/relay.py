"""The one relay path: which child gets which frame, decided in one place.

Theory of operation
-------------------
Every frame that leaves this peer goes through ``Relay.fan_out``, whether the
streamer encoded it, it arrived from the parent and is forwarded untouched, or a
transcode job made it from a higher layer. The per-child decision lives there:

    delivered layer = min(the child's demand clamped to the source, what we have)

``have`` is the layer arriving from our parent (a relay cannot send more than it
gets), or None at the root (which encodes whatever is asked for). ``fan_out(frame,
have)`` sends ``frame`` to exactly the children whose delivered layer is
``frame.layer``, encoding its header once and sharing the bytes.

A relay that received layer L therefore:

1. fans the received frame out untouched (children that need L or more get L);
2. transcodes down once per lower layer per frame (``LatestWorker``: a fresh frame
   beats a backlog), shared by every child on that layer, and fans each result out;
3. when it also displays or records, the transcode job decodes once and hands its
   picture to the display (``on_picture``) so nothing decodes the same frame twice.

The root asks ``layers(None)`` which layers to encode, encodes them off the loop and
calls ``fan_out`` once per layer.

Each child's queue is the link's own bounded video queue (drop-oldest): ``send`` on
a ``ChildSink`` returns False when it had to drop. The per-child record (``_Child``)
is where per-child stream state belongs; an inter-frame codec adds here, and only
here: "this child dropped a frame, skip to the next keyframe and ask for one" (a
``needs_keyframe`` flag set when ``send`` returns False, cleared by a keyframe
frame), and "this child just attached, start it at a keyframe".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from peer.node import codec
from peer.node.workers import LatestWorker
from protocol import VideoFrame, encode

log = logging.getLogger(__name__)


class ChildSink(Protocol):
    """Where a child's frames go: its link's bounded video queue."""

    def send_video(self, data: bytes) -> bool:
        """Queue one encoded frame; False when an older one had to be dropped."""


@dataclass(slots=True)
class _Child:
    sink: ChildSink
    layer: int  # the layer its subtree asked for (unclamped)
    sent: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Transcode:
    frame: VideoFrame
    layers: frozenset[int]
    picture: bool  # also decode at full size for the display


_Transcoded = tuple[dict[int, "codec.EncodedLayer"], "codec.Image | None"]


class Relay:
    """The children of this peer and the frames they get.

    Args:
        executor: where transcoding runs (CPU work off the event loop).
        clamp: a layer lowered to the source's height (the tree knows the source).
        is_live: whether frames of an epoch are still the current stream's (a
            transcode finishing after a new stream began must not be sent).
        on_picture: receives ``(frame, picture)`` when a transcode job decoded the
            frame for the display as well (see ``forward``).
    """

    def __init__(
        self,
        executor: Executor,
        *,
        clamp: Callable[[int], int],
        is_live: Callable[[int], bool],
        on_picture: Callable[[VideoFrame, codec.Image | None], None],
    ) -> None:
        self._clamp = clamp
        self._is_live = is_live
        self._on_picture = on_picture
        self._children: dict[Hashable, _Child] = {}
        self._transcoder: LatestWorker[_Transcode, _Transcoded] = LatestWorker(
            "transcode", executor, self._transcode_work, self._transcode_done)

    # --- children ------------------------------------------------------------------

    def add_child(self, key: Hashable, sink: ChildSink, layer: int) -> None:
        """Start sending to a child whose subtree needs ``layer``."""
        self._children[key] = _Child(sink, layer)

    def set_child_layer(self, key: Hashable, layer: int) -> None:
        """The child's subtree now needs ``layer`` (takes effect from the next frame)."""
        child = self._children.get(key)
        if child is not None:
            child.layer = layer

    def remove_child(self, key: Hashable) -> None:
        self._children.pop(key, None)

    def clear(self) -> None:
        self._children.clear()

    def __len__(self) -> int:
        return len(self._children)

    def delivered(self, child_layer: int, have: int | None) -> int:
        """The layer a child that asked for ``child_layer`` gets when we have ``have``."""
        target = self._clamp(child_layer)
        return target if have is None else min(target, have)

    def layers(self, have: int | None) -> set[int]:
        """Every layer some child gets when we have ``have`` (None: the root)."""
        return {self.delivered(c.layer, have) for c in self._children.values()}

    # --- the fan-out -----------------------------------------------------------------

    def fan_out(self, frame: VideoFrame, have: int | None, data: bytes | None = None) -> int:
        """Send ``frame`` to every child whose delivered layer is ``frame.layer``.

        The single place where a frame meets a child's queue.

        Args:
            frame: the frame to send (any source: encoded, forwarded, transcoded).
            have: the layer we receive from our parent, None at the root.
            data: ``frame`` already encoded for the wire, when the caller has it.

        Returns:
            How many children it was queued for.
        """
        sent = 0
        for child in self._children.values():
            if self.delivered(child.layer, have) != frame.layer:
                continue
            if data is None:
                data = encode(frame)  # once per frame, shared by its children
            child.sent += 1
            if not child.sink.send_video(data):
                child.dropped += 1
            sent += 1
        return sent

    def forward(self, frame: VideoFrame, *, picture: bool) -> bool:
        """A frame arrived from our parent: send it on, transcoding where needed.

        Args:
            frame: as received.
            picture: the caller also wants the frame decoded (display or record).

        Returns:
            True when a transcode job took the frame and will hand its decoded picture
            to ``on_picture``; False when the caller must decode it itself (if at all).
        """
        self.fan_out(frame, frame.layer)
        lower = self.layers(frame.layer) - {frame.layer}
        if not lower:
            return False
        self._transcoder.submit(_Transcode(frame, frozenset(lower), picture))
        return picture

    def _transcode_work(self, job: _Transcode) -> _Transcoded:
        f = job.frame
        image = codec.decode_jpeg(f.data) if job.picture else None
        return codec.transcode_down(f.data, f.width, f.height, job.layers, image), image

    def _transcode_done(self, job: _Transcode, result: _Transcoded) -> None:
        f = job.frame
        encoded, image = result
        if job.picture:
            self._on_picture(f, image)
        if not self._is_live(f.epoch):
            return
        for layer, enc in encoded.items():
            self.fan_out(VideoFrame(f.epoch, f.seq, f.captured_at, enc.width, enc.height,
                                    layer, enc.jpeg), f.layer)

    async def close(self) -> None:
        """Stop the transcoder (waits for the running job's task to end)."""
        await self._transcoder.close()
