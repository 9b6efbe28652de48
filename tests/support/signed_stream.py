"""A stand-in streamer's key for tests that play a parent at the socket level.

Since issue 13 a peer believes a stream only inside the streamer's signed
announcement, and each frame and sound packet only with the streamer's signature. A
test's fake parent that should be *believed* signs like a real streamer with a
``FakeStreamer``; its ``peer_id`` is the id the test's directory reports as the lock
holder.
"""

from __future__ import annotations

from peer.node.media_auth import MediaSigner
from peer.node.tree.state import StreamInfo
from protocol import Accept, AudioFrame, PathEntry, VideoFrame
from protocol.identity import Identity
from protocol.stream_auth import Announcement


class FakeStreamer:
    """A key that signs like the streamer of one stream (``epoch``, ``stream``)."""

    def __init__(self, epoch: int = 1, stream: StreamInfo | None = None,
                 identity: Identity | None = None) -> None:
        self.identity = identity or Identity.generate()
        self.peer_id = self.identity.peer_id
        self.stream = stream or StreamInfo(320, 180, 30.0, "mjpeg")
        self.signer = MediaSigner(self.identity)
        self.announcement: Announcement = self.signer.announcement(epoch, self.stream, 1.0)

    def accept(self, path: tuple[PathEntry, ...]) -> Accept:
        """The Accept a parent on ``path`` sends for this stream (announcement in it)."""
        ann = self.announcement
        return Accept(path=path, epoch=ann.epoch, source_width=ann.width,
                      source_height=ann.height, fps=ann.fps, codec=ann.codec, ann=ann)

    def video(self, frame: VideoFrame) -> VideoFrame:
        return self.signer.video(frame)

    def audio(self, frame: AudioFrame) -> AudioFrame:
        return self.signer.audio(frame)
