"""Where each message from a neighbour goes.

Video goes to the intake (which checks it came from the parent), sound to the audio
station, chat to the gossip, a child's keyframe request to the relay, the parent's
playback state down to our children; Ping and Pong run the NTP-style clock estimate
(a Pong from the parent also carries the root's clock, so offsets add up along the
path). Everything else is the tree protocol's: ``TreeState.receive``. Any message
counts as hearing from that link (silence past the tree's timeouts closes it); a
Pong only as a sign of life (it does not spare the next probe), and Pings are
answered at most ``limits.MAX_PINGS_ANSWERED_PER_S`` a second per link.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from peer.node.audio.station import AudioStation
from peer.node.events import ErrorRaised, NodeEvent
from peer.node.gossip import ChatGossip
from peer.node.intake import VideoIntake
from peer.node.link import PeerLink
from peer.node.linktable import LinkTable
from peer.node.playback import PlaybackState
from peer.node.relay import Relay
from peer.node.tree_driver import TreeDriver, now
from protocol import (
    AudioFrame,
    Chat,
    ChatHave,
    Error,
    KeyframeRequest,
    Message,
    Ping,
    Playback,
    Pong,
    VideoFrame,
)


class MessageDispatch:
    """Hands each received message to the part that handles it.

    Args:
        driver: the tree state's driver (tree messages, liveness).
        links: the open links by tree id.
        intake, audio, chat, relay, playback: the parts messages go to.
        emit: reports a neighbour's Error to the user.
    """

    def __init__(self, driver: TreeDriver, links: LinkTable, *, intake: VideoIntake,
                 audio: AudioStation, chat: ChatGossip, relay: Relay,
                 playback: PlaybackState, emit: Callable[[NodeEvent], None]) -> None:
        self._driver = driver
        self._tree = driver.tree
        self._links = links
        self._intake = intake
        self._audio = audio
        self._chat = chat
        self._relay = relay
        self._playback = playback
        self._emit = emit

    def __call__(self, link: PeerLink, message: Message) -> None:
        link_id = self._links.id_of(link)
        if link_id is None:
            return
        tree = self._tree
        at = now()
        # A Pong shows the link lives, not that anything flows that would spare a probe.
        tree.heard(link_id, at, answer=type(message) is Pong)
        if isinstance(message, VideoFrame):
            self._intake.frame(link_id, message)
        elif isinstance(message, AudioFrame):
            # Only the parent sends sound, of the live stream; the station forwards it
            # untouched to every child, then counts, records and plays it.
            if link_id == tree.parent and tree.is_live_epoch(message.epoch) \
                    and self._intake.guard.audio(message):  # signed by the streamer
                self._audio.received(message, self._links.sound_children())
        elif isinstance(message, Ping):
            if link.pongs.take(at):  # a flood of pings is answered at a bounded rate
                link.send(Pong(t0=message.t0, t1=time.time(), t2=time.time(),
                               root_offset=self._links.root_offset()))
        elif isinstance(message, Pong):
            link.clock.add_sample(message.t0, message.t1, message.t2, time.time())
            if link_id in (tree.parent, tree.incoming):  # (a move's new parent)
                link.root_offset = message.root_offset
        elif isinstance(message, Chat):
            self._chat.received(link, message)
        elif isinstance(message, ChatHave):
            self._chat.offered(link, message)
        elif isinstance(message, Error):
            self._emit(ErrorRaised(message=f"{link.name}: {message.reason}"))
        elif isinstance(message, Playback):
            # Only from the parent, of the live stream: kept, passed down, reported.
            if link_id == tree.parent and self._intake.guard.playback(message) \
                    and self._playback.received(message, tree.epoch):
                for child in self._links.children:
                    child.send(message)
                # A paused stream sends no video: the parent is not silent then.
                tree.set_video_paused(self._playback.paused, at)
                self._emit(self._playback.event())
        elif isinstance(message, KeyframeRequest):
            # From a child only (a parent has nothing to ask of us); the relay routes it
            # to the layer's producer, throttled per layer there.
            if link_id in tree.children:
                self._relay.keyframe_requested(link_id, message.layer)
        else:
            self._driver.apply(tree.receive(link_id, message, at))
