"""What the tree's news means for the media, the chat and the user.

``TreeState`` reports who came and went (tree/actions.py); ``Attachments.handle``
makes the rest of the node follow:

- a child attached: the relay feeds it at its layer, chat offers it our history, and
  a paused stream tells it so (no frames will come to say otherwise);
- a parent attached: its codec must be one we decode (else the link goes), the
  relay restarts at its next keyframe (a new parent is a new chain; not after a move
  whose new parent's frames already continue ours, ``handed_over``), recording and
  transcoding follow its frame rate, chat offers our history, the user hears Joined;
- a parent detached: sound stops, the user hears ParentLost, the intake starts
  counting the outage (or not, when the stream is over).

Links made by connection reversal run the other way round: we dialled our child (no
media from it) and our parent dialled us (its media is welcome once it is our parent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from peer.node.audio.station import AudioStation
from peer.node.codecs.base import parse_codec
from peer.node.display import Display
from peer.node.events import ErrorRaised, Joined, NodeEvent, ParentLost
from peer.node.gossip import ChatGossip
from peer.node.intake import VideoIntake
from peer.node.link import PeerLink
from peer.node.linktable import LinkTable
from peer.node.picture import CodecError
from peer.node.playback import PlaybackState
from peer.node.relay import Relay
from peer.node.tree import actions as act
from peer.node.tree.state import TreeState
from protocol import Bye, ErrorCode

log = logging.getLogger(__name__)


class Attachments:
    """Applies the tree's events to the node's parts.

    Args:
        tree: our tree state (epoch, what we watch).
        links: the open links by tree id.
        relay, display, intake, chat, audio, playback: the parts that follow.
        emit: reports events to the user.
    """

    def __init__(self, tree: TreeState, links: LinkTable, *, relay: Relay, display: Display,
                 intake: VideoIntake, chat: ChatGossip, audio: AudioStation,
                 playback: PlaybackState, emit: Callable[[NodeEvent], None]) -> None:
        self._tree = tree
        self._links = links
        self._relay = relay
        self._display = display
        self._intake = intake
        self._chat = chat
        self._audio = audio
        self._playback = playback
        self._emit = emit

    def handle(self, event: act.TreeEvent) -> None:
        link = self._links.get(event.link)
        if isinstance(event, act.PeerIdentified) and link is not None:
            link.peer_id, link.name = event.peer_id, event.name
        elif isinstance(event, act.ChildAttached) and link is not None:
            self._child_attached(link, event)
        elif isinstance(event, act.ChildLayerChanged):
            self._relay.set_child_layer(event.link, event.layer, auto=event.auto)
        elif isinstance(event, act.ChildDetached):
            self._relay.remove_child(event.link)
            log.info("child gone: %s", event.reason)
        elif isinstance(event, act.ParentAttached) and link is not None:
            if not link.outbound:  # it dialled us (reversal): its media is welcome now
                link.set_media_in(True)
            self._parent_attached(link, event)
        elif isinstance(event, act.ParentDetached):
            self._audio.parent_lost()
            self._emit(ParentLost(parent=event.name, parent_id=event.peer_id,
                                  reason=event.reason))
            self._intake.parent_lost(stream_over=event.stream_over)

    def _child_attached(self, link: PeerLink, event: act.ChildAttached) -> None:
        if link.outbound:  # we dialled it (reversal): no media from a child
            link.set_media_in(False)
        self._relay.add_child(event.link, link, event.layer, auto=event.auto)
        self._chat.link_up(link, event.peer_id)
        state = self._playback.for_new_child(self._tree.epoch)
        if state is not None:  # paused: no frames will come to tell it otherwise
            link.send(state)

    def _parent_attached(self, link: PeerLink, event: act.ParentAttached) -> None:
        try:
            parse_codec(event.accept.codec)
        except CodecError as exc:
            # Watching needs a decoder; relaying would pass on what nobody here checks.
            self._emit(ErrorRaised(message=f"cannot watch {event.name}'s stream: {exc}"))
            link.close(f"cannot decode the stream: {exc}",
                       Bye(reason=str(exc), code=int(ErrorCode.UNEXPECTED)))
            return
        if self._display.recording is not None:
            self._display.recording.fps = event.accept.fps
        if not event.handed_over:
            # A new parent is a new chain: we and our children start at its keyframe.
            # (A move's new parent took over where its frames continue ours: they flow
            # on as they were.)
            self._relay.restart()
        self._relay.processor.fps = event.accept.fps
        if not event.handed_over:
            self._intake.parent_attached()
        self._chat.link_up(link, event.peer_id)
        width, height = self._tree.view_size()
        self._emit(Joined(parent=event.name, parent_id=event.peer_id, depth=event.depth,
                          width=width, height=height))
