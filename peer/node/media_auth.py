"""Signing what we stream or transcode, and checking what our parent sends (issue 13).

Theory of operation
-------------------
``MediaSigner`` holds our key. At the root it signs the stream announcement, every
encoded frame of every layer and every sound packet (protocol/stream_auth.py); at a
relay that transcodes, it signs the lower layers it makes, each with the
streamer-signed header of the frame it came from (``src``).

``MediaGuard`` checks every frame and sound packet from our parent *before* anything
else sees it (stats, relay, decoder): a frame is believed only when its epoch is the
one our tree's verified announcement names and its signature verifies against that
announcement's streamer (or, for a transcoded layer, against a relay on our path to
the root, with a streamer-signed source of a higher layer). Anything else is forged:
it is dropped, counted (``refused``; the sequence gap it leaves shows as loss) and
the parent is left as a failed parent (``TreeState.refuse_parent``: the usual
repair, and that peer avoided for a minute). A verified frame the parent already
sent (same layer, seq not above the last one) is a replay: dropped and counted, not
shown or forwarded twice. A parent that sends nothing verifiable is also silent, and
the tree's silent-parent check moves us on.

Memory is bounded: one last seq per layer and for sound, cleared per stream.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Callable

from peer.node.layers import available_layers
from peer.node.tree.state import StreamInfo, TreeState
from protocol import AudioFrame, PathEntry, Playback, VideoFrame
from protocol.identity import Identity
from protocol.stream_auth import (
    AUDIO_CONTEXT,
    PLAYBACK_CONTEXT,
    TRANSCODE_CONTEXT,
    VIDEO_CONTEXT,
    Announcement,
    SourceProof,
    audio_bytes,
    digest,
    frame_bytes,
    playback_bytes,
    sign_b64,
    verify_b64,
)

__all__ = ["MediaGuard", "MediaSigner"]

log = logging.getLogger(__name__)

# The key under which sound's last seq is kept (video keys are layer heights).
_AUDIO = -1


def _video_bytes(frame: VideoFrame, data_digest: bytes) -> bytes:
    return frame_bytes(frame.epoch, frame.seq, frame.captured_at, frame.width, frame.height,
                       frame.layer, frame.codec, frame.keyframe, frame.prev, data_digest)


def _transcode_bytes(frame: VideoFrame, data_digest: bytes, source: SourceProof) -> bytes:
    # Bound to the source's signature: the relay vouches for this output of that frame.
    return _video_bytes(frame, data_digest) + b"\0" + source.sig.encode("ascii")


class MediaSigner:
    """Signs what this peer produces: as the streamer, or as a transcoding relay.

    Args:
        identity: our key.
    """

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def announcement(self, epoch: int, stream: StreamInfo, started_at: float) -> Announcement:
        """Our signed announcement of the stream we start (``started_at``: wall clock)."""
        return Announcement.make(self._identity, epoch=epoch, codec=stream.codec,
                                 width=stream.width, height=stream.height, fps=stream.fps,
                                 layers=available_layers(stream.height),
                                 started_at=started_at)

    def video(self, frame: VideoFrame) -> VideoFrame:
        """``frame`` (one we encoded from our own source), signed as the streamer."""
        sig = sign_b64(self._identity, VIDEO_CONTEXT, _video_bytes(frame, digest(frame.data)))
        return dataclasses.replace(frame, sig=sig, by="", src=None)

    def transcoded(self, source: VideoFrame, out: VideoFrame) -> VideoFrame:
        """``out`` (a lower layer we made from ``source``), signed by us as its maker."""
        proof = source.src if source.by and source.src is not None else SourceProof(
            source.width, source.height, source.layer, source.codec, source.keyframe,
            source.prev, base64.b64encode(digest(source.data)).decode("ascii"), source.sig)
        sig = sign_b64(self._identity, TRANSCODE_CONTEXT,
                       _transcode_bytes(out, digest(out.data), proof))
        return dataclasses.replace(out, sig=sig, by=self._identity.peer_id, src=proof)

    def audio(self, frame: AudioFrame) -> AudioFrame:
        """A sound packet of our stream, signed."""
        sig = sign_b64(self._identity, AUDIO_CONTEXT,
                       audio_bytes(frame.epoch, frame.seq, frame.captured_at, frame.opus))
        return dataclasses.replace(frame, sig=sig)

    def playback(self, message: Playback) -> Playback:
        """A pause/seek notice of our stream, signed."""
        sig = sign_b64(self._identity, PLAYBACK_CONTEXT, _playback_bytes(message))
        return dataclasses.replace(message, sig=sig)


def _playback_bytes(message: Playback) -> bytes:
    return playback_bytes(message.epoch, message.paused, message.position_ms,
                          message.duration_ms, message.at)


class MediaGuard:
    """Checks media from our parent against the stream's signed announcement.

    Args:
        tree: our tree state (its verified announcement, path and parent).
        refuse: leave the parent for this reason (the node applies
            ``TreeState.refuse_parent``).
    """

    def __init__(self, tree: TreeState, refuse: Callable[[str], None]) -> None:
        self._tree = tree
        self._refuse = refuse
        self.refused = 0  # frames and packets dropped as forged, in total
        self.replayed = 0  # verified ones dropped as repeats
        self._epoch: int | None = None
        self._last: dict[int, int] = {}  # layer (or _AUDIO) -> last seq believed
        self._playback_at: float | None = None  # the newest pause/seek notice's time

    def video(self, frame: VideoFrame) -> bool:
        """Whether a live-epoch frame from our parent may be used (forged: the parent
        is refused; repeated: dropped quietly)."""
        problem = self._video_problem(frame)
        if problem is not None:
            return self._forged(problem)
        return self._fresh(frame.epoch, frame.layer, frame.seq)

    def audio(self, frame: AudioFrame) -> bool:
        """Whether a live-epoch sound packet from our parent may be used."""
        ann = self._tree.announcement
        if ann is None or frame.epoch != ann.epoch:
            return self._forged(f"sound of epoch {frame.epoch}, not the announced stream's")
        if not verify_b64(ann.streamer_id, frame.sig, AUDIO_CONTEXT,
                          audio_bytes(frame.epoch, frame.seq, frame.captured_at, frame.opus)):
            return self._forged("sound whose signature does not verify")
        return self._fresh(frame.epoch, _AUDIO, frame.seq)

    def playback(self, message: Playback) -> bool:
        """Whether a pause/seek notice from our parent is the streamer's and new (one of
        an older stream is ignored; a forged one refuses the parent)."""
        if not self._tree.is_live_epoch(message.epoch):
            return False
        ann = self._tree.announcement
        if ann is None or message.epoch != ann.epoch:
            return self._forged(f"playback news of epoch {message.epoch}, not the "
                                "announced stream's")
        if not verify_b64(ann.streamer_id, message.sig, PLAYBACK_CONTEXT,
                          _playback_bytes(message)):
            return self._forged("playback news whose signature does not verify")
        if message.epoch != self._epoch:
            self._epoch = message.epoch
            self._last.clear()
            self._playback_at = None
        if self._playback_at is not None and message.at <= self._playback_at:
            self.replayed += 1
            return False
        self._playback_at = message.at
        return True

    def video_problem(self, frame: VideoFrame, path: tuple[PathEntry, ...]) -> str | None:
        """Why a frame that came over ``path`` (root .. its sender) is not the
        streamer's (None: it is): a move's new parent's frames, checked before the
        new parent is ours."""
        return self._video_problem(frame, path)

    def _video_problem(self, frame: VideoFrame,
                       path: tuple[PathEntry, ...] | None = None) -> str | None:
        ann = self._tree.announcement
        if ann is None or frame.epoch != ann.epoch:
            return f"video of epoch {frame.epoch}, not the announced stream's"
        data_digest = digest(frame.data)
        if not frame.by:
            if not verify_b64(ann.streamer_id, frame.sig, VIDEO_CONTEXT,
                              _video_bytes(frame, data_digest)):
                return "video whose signature does not verify"
            return None
        # A transcoded layer: its maker must be a relay on our path (never the root,
        # which encodes every layer itself), the source a higher layer the streamer
        # signed, and the maker's signature bind this output to that source.
        src = frame.src
        path = self._tree.path if path is None else path
        if src is None or frame.by == ann.streamer_id \
                or not any(p.id == frame.by for p in path[1:]):
            return "transcoded video from a peer not on our path"
        if src.layer <= frame.layer:
            return "transcoded video not made from a higher layer"
        signed = src.signed_bytes(frame.epoch, frame.seq, frame.captured_at)
        if signed is None or not verify_b64(ann.streamer_id, src.sig, VIDEO_CONTEXT, signed):
            return "transcoded video whose source is not the streamer's"
        if not verify_b64(frame.by, frame.sig, TRANSCODE_CONTEXT,
                          _transcode_bytes(frame, data_digest, src)):
            return "transcoded video whose relay signature does not verify"
        return None

    def _fresh(self, epoch: int, key: int, seq: int) -> bool:
        if epoch != self._epoch:
            self._epoch = epoch
            self._last.clear()
            self._playback_at = None
        last = self._last.get(key)
        if last is not None and seq <= last:
            self.replayed += 1
            return False
        self._last[key] = seq
        return True

    def _forged(self, reason: str) -> bool:
        self.refused += 1
        log.warning("refusing our parent %s: %s", self._tree.parent_name, reason)
        self._refuse(reason)
        return False
