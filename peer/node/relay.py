"""The one relay path: which child gets which frame, decided in one place.

Theory of operation
-------------------
Every frame that leaves this peer goes through ``Relay.fan_out``, whether the
streamer encoded it, it arrived from the parent and is forwarded untouched, or the
receive pipeline made it from a higher layer. The per-child decision lives there:

    target layer = min(the child's layer clamped to the source, what we have)

where the child's layer is what it asked for, or, for a child on ``auto``, what its
``AutoLayer`` picked from the child's send backlog. ``have`` is the layer arriving
from our parent (a relay cannot send more than it gets), or None at the root (which
encodes whatever is asked for).

Frames of an inter-frame codec (H.264) only decode in order, from a keyframe. So each
child has a ``ChainGate``: a frame goes to a child when it is a keyframe of the
child's target layer or continues the chain the child already has (``prev``). A new
child, a child whose queue had to drop a frame, and a child moving to another layer
therefore wait for a keyframe, and the relay asks for one: from its own encoders for
a layer it transcodes (or encodes, at the root), from its parent for the layer it
forwards. A child switching layers keeps its old chain until the new layer's keyframe
arrives (make-before-break), so a switch loses nothing. MJPEG frames are all
keyframes: every gate passes them.

A relay that received layer L therefore:

1. fans the received frame out untouched (children whose target is L get L);
2. hands it to the ``ReceivePipeline`` when anything needs its picture: the pipeline
   decodes it once, in order, encodes each lower layer children need (one encoder per
   size, shared by all children on that layer, keyframes where asked), records it,
   and the result comes back to ``fan_out`` and to the display (``on_picture``).

A child whose subtree asked for ``NO_VIDEO`` (nobody there watches: a streamer still
choosing its source) gets no video at all, and no layer is made for it; its link
still carries chat and control (and no sound either: ``TreeState.child_wants_sound``).

Keyframe requests are served by ``KeyframeThrottle`` (at most one forced keyframe per
layer per interval) at whoever produces the layer; requests to the parent are sent at
most once per ``UPSTREAM_REQUEST_S`` per layer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from peer.node.autolayer import AutoLayer
from peer.node.codecs.chain import ChainGate
from peer.node.codecs.keyframes import KeyframeThrottle
from peer.node.codecs.rates import VBV_BUFFER_S, layer_bitrate
from peer.node.errors import MediaError
from peer.node.media_auth import MediaSigner
from peer.node.picture import CodecError, Image
from peer.node.pipeline import ReceiveJob, ReceivePipeline, ReceiveProcessor, ReceiveResult
from protocol import VideoFrame, encode, limits

if TYPE_CHECKING:
    from peer.node.recording import Recording

log = logging.getLogger(__name__)

# A lost request upstream costs a child its picture until the next one: ask again
# after this long if the keyframe has not come (the parent throttles storms anyway).
UPSTREAM_REQUEST_S: Final = 0.25
# A child's queue of an inter-frame codec holds this many VBV buffers of its layer's
# cap in bytes (one second at 720p: 312 KB): one is what a link at the cap needs to
# pass x264's bursts without loss; the second covers a link somewhat below the cap
# (a parent with three 720p children on 8 Mbit/s gives each ~2.5 Mbit/s).
VIDEO_QUEUE_VBV: Final = 2


class ChildSink(Protocol):
    """Where a child's frames go: its link's bounded video queue."""

    def send_video(self, data: bytes, budget_bytes: int | None = None) -> bool:
        """Queue one encoded frame (``budget_bytes``: bound the queue in bytes, see
        ``link.PeerLink.send_video``); False when an older one had to be dropped."""

    @property
    def queued_frames(self) -> int:
        """Frames waiting in the queue."""

    @property
    def queued_bytes(self) -> int:
        """Bytes of the frames waiting in the queue."""

    def clear_video(self) -> int:
        """Drop every queued frame; returns how many."""


@dataclass(slots=True)
class _Child:
    sink: ChildSink
    layer: int  # the layer its subtree asked for (unclamped); the ceiling for auto
    auto: AutoLayer | None = None
    gate: ChainGate = field(default_factory=ChainGate)
    sent: int = 0
    dropped: int = 0
    keyframes: int = 0

    def asked(self) -> int:
        return self.auto.layer if self.auto is not None else self.layer

    @property
    def watching(self) -> bool:
        """Whether anyone in its subtree wants video at all."""
        return self.layer != limits.NO_VIDEO


class Relay:
    """The children of this peer and the frames they get.

    Args:
        executor: where decoding and transcoding run (CPU work off the event loop).
        clamp: a layer lowered to the source's height (the tree knows the source).
        is_live: whether frames of an epoch are still the current stream's (a
            transcode finishing after a new stream began must not be sent).
        on_picture: receives ``(frame, picture)`` for each received frame the pipeline
            decoded for the display.
        request_keyframe: asks our parent for a keyframe of a layer.
        on_bad_frame: a received frame the decoder refused (the parent's link should
            close with this reason).
        on_record_error: the recording failed and stopped.
        now: monotonic clock (tests inject one).
        fps: the stream's frame rate (rate budgets of transcoded layers).
        signer: signs the frames we encode (the streamer's own, and the layers we
            transcode, issue 13); None leaves them unsigned (tests of the relay alone).
    """

    def __init__(
        self,
        executor: Executor,
        *,
        clamp: Callable[[int], int],
        is_live: Callable[[int], bool],
        on_picture: Callable[[VideoFrame, Image | None], None],
        request_keyframe: Callable[[int], None] = lambda layer: None,
        on_bad_frame: Callable[[str], None] = lambda reason: None,
        on_record_error: Callable[[MediaError], None] = lambda exc: None,
        now: Callable[[], float] | None = None,
        fps: float = 30.0,
        signer: MediaSigner | None = None,
    ) -> None:
        self._signer = signer
        self._clamp = clamp
        self._is_live = is_live
        self._on_picture = on_picture
        self._request_upstream = request_keyframe
        self._on_bad_frame = on_bad_frame
        self._on_record_error = on_record_error
        self._now = now or time.monotonic
        self._children: dict[Hashable, _Child] = {}
        self.throttle = KeyframeThrottle()
        self._asked_upstream: dict[int, float] = {}
        # Our own position in the received stream (decoding for display, recording,
        # transcoding): the same gate a child has.
        self.gate = ChainGate()
        self._feeding = False  # the pipeline has been given every frame of our chain
        self._have: int | None = None
        self._fps = fps
        self.processor = ReceiveProcessor(fps)
        self._pipeline = ReceivePipeline(executor, self.processor,
                                         on_result=self._received, on_error=self._refused)
        self.keyframes_in = 0

    # --- children ------------------------------------------------------------------

    def add_child(self, key: Hashable, sink: ChildSink, layer: int, *, auto: bool = False,
                  ) -> None:
        """Start sending to a child whose subtree needs ``layer`` (its ceiling when
        ``auto``). It gets frames from the next keyframe of its layer on."""
        child = _Child(sink, layer)
        self._children[key] = child
        self._set_auto(child, auto)

    def set_child_layer(self, key: Hashable, layer: int, *, auto: bool = False) -> None:
        """The child's subtree now needs ``layer`` (takes effect from the next frame)."""
        child = self._children.get(key)
        if child is None:
            return
        if layer == limits.NO_VIDEO:
            child.gate.broke()  # when it watches again, it starts at a keyframe
        child.layer = layer
        self._set_auto(child, auto)

    def _set_auto(self, child: _Child, auto: bool) -> None:
        if not auto or not child.watching:  # nothing to adapt when nothing is sent
            child.auto = None
        elif child.auto is None:
            child.auto = AutoLayer(limits.LAYERS, child.layer, self._now())
        else:
            child.auto.set_ceiling(child.layer, self._now())

    def remove_child(self, key: Hashable) -> None:
        self._children.pop(key, None)

    def clear(self) -> None:
        self._children.clear()

    def __len__(self) -> int:
        return len(self._children)

    def child_layer(self, key: Hashable) -> int | None:
        """The layer a child currently receives (None while it waits for a keyframe)."""
        child = self._children.get(key)
        return None if child is None else child.gate.layer

    def child_stats(self) -> list[tuple[int | None, int, int]]:
        """(layer received, frames sent, frames dropped) of every child."""
        return [(c.gate.layer, c.sent, c.dropped) for c in self._children.values()]

    def delivered(self, child_layer: int, have: int | None) -> int:
        """The layer a child that asked for ``child_layer`` gets when we have ``have``."""
        target = self._clamp(child_layer)
        return target if have is None else min(target, have)

    def layers(self, have: int | None) -> set[int]:
        """Every layer some child gets or is still on when we have ``have`` (None:
        the root). A child moving to another layer keeps its old one until the new
        one's keyframe arrives, so both are made meanwhile."""
        wanted = set()
        for child in self._children.values():
            if not child.watching:
                continue
            wanted.add(self.delivered(child.asked(), have))
            if child.gate.layer is not None and (have is None or child.gate.layer <= have):
                wanted.add(child.gate.layer)
        return wanted

    def observe(self, now: float) -> float:
        """Let every ``auto`` child's backlog move its layer (a few times a second).

        Returns:
            When they need looking at again (``AutoLayer.next_look``; infinity for
            none): the node's tick comes no later than that.
        """
        look = math.inf
        for child in self._children.values():
            auto = child.auto
            if auto is not None:
                auto.observe(now, child.sink.queued_frames, child.dropped)
                look = min(look, auto.next_look(now))
        return look

    # --- keyframes -------------------------------------------------------------------

    def keyframe_requested(self, key: Hashable, layer: int) -> None:
        """A child asked for a keyframe (it joined, switched parent or lost frames)."""
        child = self._children.get(key)
        if child is not None and child.watching:
            # Its chain keeps flowing meanwhile: the child may need the keyframe for a
            # decoder of its own that starts now (a new child of its own, a recording),
            # and it refuses what it cannot use itself.
            self._need_keyframe(self.delivered(child.asked(), self._have), self._have)

    def keyframes_due(self, layers: set[int], now: float) -> frozenset[int]:
        """Of ``layers`` about to be encoded here, those that must be keyframes."""
        return self.throttle.take(layers, now)

    def _need_keyframe(self, layer: int, have: int | None) -> None:
        if have is None or layer < have:
            self.throttle.request(layer)  # we make this layer: our encoder serves it
            return
        now = self._now()
        if now - self._asked_upstream.get(layer, -1e18) >= UPSTREAM_REQUEST_S:
            self._asked_upstream[layer] = now
            self._request_upstream(layer)

    # --- the fan-out -----------------------------------------------------------------

    def fan_out(self, frame: VideoFrame, have: int | None, data: bytes | None = None) -> int:
        """Send ``frame`` to every child that should get it now.

        The single place where a frame meets a child's queue.

        Args:
            frame: the frame to send (any source: encoded, forwarded, transcoded).
            have: the layer we receive from our parent, None at the root.
            data: ``frame`` already encoded for the wire, when the caller has it.

        Returns:
            How many children it was queued for.
        """
        if not self._children:
            return 0  # a leaf: nothing to decide
        sent = 0
        # An inter-frame stream's queue is bounded in bytes: twice its VBV buffer (a
        # link at the layer's cap then never drops a frame x264 let through, keyframes
        # included); JPEGs keep the plain frame count.
        budget = (None if frame.codec == "mjpeg" else round(
            layer_bitrate(frame.layer, self._fps) / 8 * VIDEO_QUEUE_VBV * VBV_BUFFER_S))
        for child in self._children.values():
            if not child.watching:
                continue
            target = self.delivered(child.asked(), have)
            if child.gate.switch(target) and frame.layer == target and not frame.keyframe:
                self._need_keyframe(target, have)
            if frame.layer not in (target, child.gate.layer):
                continue
            if not child.gate.admit(frame.layer, frame.seq, frame.prev, frame.keyframe):
                if child.gate.waiting and frame.layer == target:
                    self._need_keyframe(target, have)
                continue
            if data is None:
                data = encode(frame)  # once per frame, shared by its children
            if (budget is not None and frame.keyframe and child.sink.queued_frames
                    and child.sink.queued_bytes + len(data) > budget):
                # A keyframe of an inter-frame codec that does not fit behind what is
                # queued supersedes it (latest wins; pushing the oldest out instead
                # would break the chain and clear the keyframe with it). Within the
                # budget the queued frames go first: they decode, and each one cleared
                # is a frame the child never sees. JPEGs each stand alone: they stay.
                child.dropped += child.sink.clear_video()
            child.sent += 1
            child.keyframes += frame.keyframe
            if not child.sink.send_video(data, budget):
                child.dropped += 1
                if frame.codec != "mjpeg":
                    # An older frame of this child's chain is gone: what follows it in
                    # the queue (this one too) cannot decode. Restart at a keyframe.
                    child.dropped += child.sink.clear_video()
                    child.gate.broke()
                    self._need_keyframe(target, have)
            sent += 1
        return sent

    def forward(self, frame: VideoFrame, *, picture: bool,
                recording: Recording | None = None) -> bool:
        """A frame arrived from our parent: send it on, transcoding where needed.

        Args:
            frame: as received.
            picture: the caller wants the decoded picture (``on_picture`` gets it).
            recording: write the frame to this recording (in order, in the pipeline).

        Returns:
            True when the frame starts or continues our own decodable chain (the
            first such frame after a join is the first picture).
        """
        self._have = frame.layer
        self.keyframes_in += frame.keyframe
        # Untouched forwarding sends the bytes as read (verified by the intake before
        # this): no encoding per received frame.
        self.fan_out(frame, frame.layer, frame.wire)
        lower = self.layers(frame.layer) - {frame.layer} if self._children else set()
        self.processor.recording = recording
        if not (lower or picture or recording is not None):
            # Nothing decodes here; still follow the chain (it tells when the first
            # picture could be shown).
            self._feeding = False
            return self.gate.admit(frame.layer, frame.seq, frame.prev, frame.keyframe) \
                or self._stay_waiting(frame)
        if not self._feeding:
            # The decoder has not seen this chain: it starts at the next keyframe.
            self._feeding = True
            self.gate.broke()
        if not self.gate.admit(frame.layer, frame.seq, frame.prev, frame.keyframe):
            return self._stay_waiting(frame)
        job = ReceiveJob(frame, frozenset(lower), self.keyframes_due(lower, self._now()),
                         picture, recording is not None)
        if not self._pipeline.submit(job):
            log.info("decoding fell behind; skipping to the next keyframe")
            self.gate.broke()
            self._feeding = False
            self._need_keyframe(frame.layer, frame.layer)
        return True

    def _stay_waiting(self, frame: VideoFrame) -> bool:
        if self.gate.waiting:
            self._need_keyframe(frame.layer, frame.layer)
        return False

    def sign_own(self, frame: VideoFrame) -> VideoFrame:
        """A frame the streamer encoded from its own source, signed (issue 13)."""
        return frame if self._signer is None else self._signer.video(frame)

    def restart(self) -> None:
        """A new parent or stream: our chain and the children's start at a keyframe."""
        self.gate = ChainGate()
        self._feeding = False
        self._pipeline.clear()
        self.processor.reset()
        self._asked_upstream.clear()
        for child in self._children.values():
            child.gate.broke()

    def _received(self, result: ReceiveResult) -> None:
        f = result.frame
        assert isinstance(f, VideoFrame)
        if result.record_error is not None:
            self._on_record_error(result.record_error)
        if result.image is not None:
            self._on_picture(f, result.image)
        if not self._is_live(f.epoch):
            return
        now = self._now()
        for layer, enc in result.encoded.items():
            if enc.keyframe:
                self.throttle.keyframe_made(layer, now)
            out = VideoFrame(f.epoch, f.seq, f.captured_at, enc.width, enc.height,
                             layer, enc.data, codec=enc.codec.value,
                             keyframe=enc.keyframe, prev=enc.prev)
            if self._signer is not None:
                out = self._signer.transcoded(f, out)
            self.fan_out(out, f.layer)

    def _refused(self, job: ReceiveJob, exc: CodecError) -> None:
        self.gate.broke()
        self._feeding = False
        self._on_bad_frame(f"undecodable video: {exc}")

    async def close(self) -> None:
        """Stop the pipeline (waits for the running job's task to end)."""
        await self._pipeline.close()
