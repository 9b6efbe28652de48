"""One peer's part in the relay tree, sans-IO.

Theory of operation
-------------------
``TreeState`` is the tree protocol of one peer and nothing else: no sockets, no
asyncio, no clock. Its driver (the asyncio ``Node``, or the simulator) tells it what
happened, always with ``now`` from one monotonic clock, and carries out the actions
each call returns (see actions.py): send a control message, close a link, dial a
candidate, ping a neighbour, report our position to the directory. ``get_timer()``
says when ``handle_timer(now)`` is next due, the way aioquic's connection does (see
"Timer": when something can become due, not a fixed tick).

Links. Each neighbour link has an integer id. A link starts *pending*; after the
Hellos (version and room checked) it may become our *parent* (we dialled, sent a
JoinRequest, got an Accept) or a *child* (it sent us a JoinRequest and we accepted).
A pending link that neither joins nor leaves within ``2 x connect_timeout`` is closed;
so is a refused joiner that lingers ``connect_timeout`` after our Redirect.

Joining. While we are neither the root nor attached, and the room has a streamer, we
run *rounds*: the candidates to prefer (a Bye's hints, then our grandparent) then the
room's candidates, shallowest first, minus ourselves, our subtree (a hint from the
directory), peers we already tried this round and lost parents we avoid for a while
(a frozen parent may still be listed). One dial at a time: a Redirect puts its
candidates at the front of the round, a refusal or timeout moves on. A round ends
after ``MAX_JOIN_ATTEMPTS`` dials or when it runs dry; the next starts after a
back-off (``JOIN_RETRY_S``) or at once when the directory changes.

Loops. An acceptor refuses a joiner that is on its own path to the root; a joiner
refuses an Accept (or a later PathUpdate) whose path holds itself. Paths travel down
with every re-attach, so a loop is caught by the first peer that sees itself in one.

Demand. A child's LayerDemand (and its JoinRequest) says what its subtree needs; we
ask our parent for max(own layer, children's layers) whenever that changes. A layer of
``NO_VIDEO`` (0) asks for nothing (a streamer still choosing its source): a subtree
of such peers gets chat and control only, yet one child wanting 720p makes us ask for
720p whatever our own choice. Sound is asked for the same way, as a flag: a subtree
wants it when its peer plays or records it (``wants_sound``) or one of its children's
subtrees wants it; a subtree of silent viewers gets none (``child_wants_sound``).

Repair. When the parent goes (EOF, silence past ``link_timeout``, a Bye) we keep our
children and start a round preferring the Bye's hints, then our grandparent. A Bye
with ``ErrorCode.STREAM_ENDED`` is the end of the stream instead: it is passed down
and nobody repairs. Leaving on purpose sends each child a Bye naming our parent and
other candidates.

Heartbeats. Only the child pings, and only as much as it must: any byte from the
parent (video, control, a Pong) proves it alive. The child pings it once a keepalive
(``keepalive_s``: the parent's sign of life from the child, and the clock-offset
probe), and besides when it has been quiet (nothing but Pongs since our latest Ping)
for half the link timeout (``QUIET_PROBE_SHARE``: a paused room, no video wanted, a
repairing or frozen parent), so that its Pong has the other half to come; while video
flows that probe never comes due. A parent silent (not a byte, Pongs included) for
``link_timeout_s`` is dead: found at that (and a re-check, see "Stalls"), within a
tick of it at most, video or not. A child silent for ``child_timeout_s`` (a few
keepalives) is dead. A parent whose Hello lacks ``slow_pings`` (an older build, which
drops a child silent for ``link_timeout_s``) is pinged every tick.

Timer. There is no fixed tick: ``get_timer()`` is the earliest moment anything can
become due from the state's facts: each parent's death (its last byte +
``link_timeout_s``) and next probe (above), each child's death, the pending links'
deadlines, the no-video allowance's end, the join retry, the move check, a move's
handover deadline and the shed children's. Bytes only move these later, so the driver
feeds every frame through ``heard`` without re-arming; at the wake-up it set, the
state re-computes and names the next moment. A leaf fed video so wakes about twice a
second (the quiet probe's check half a link timeout after the latest frame, the
keepalive riding every other one) instead of four times, and a dead neighbour is found
at its timeout, not at the next tick after it. The tick (``ping_interval_s``) is now a
grain: an older parent's ping rate, the lateness that counts as a stall, the bound on
detection.

Repair notices. A relay that loses its parent tells its children at once: a
``PathUpdate`` flagged ``repairing`` (its last path), and its next PathUpdate (the
re-attach's) without the flag ends it. Without this every child would fail a relay that
is alive and repairing as a silent parent once the no-video allowance runs out, and
re-join elsewhere: one repair would become many. A child whose parent says so does not
count the silence against it for up to ``REPAIR_GRACE_S`` (the allowance then counts
from the end of the notice: the re-attached relay still has the whole allowance to feed
us). Against a parent that claims to repair forever, one parent link is believed once
per ``REPAIR_GRACE_EVERY_S``: a notice within that of the last believed one changes
nothing. Heartbeats are untouched (a dead repairing parent is still found by silence),
and a child that believes the notice passes it down to its own children, who would
otherwise fail it in turn.

Stalls. Silence is measured by our own timer, and a starved CPU (a machine running
more peers than cores, a stop) can hold our loop for seconds: the timer then runs late
while what the neighbours sent meanwhile waits unread (a reader parses it one loop
iteration after a due timer), and the Pings we owed a quiet parent were not sent. A
wake-up more than half a tick later than the time the driver was last told
(``get_timer()``'s latest answer: not a due time re-computed from fresher facts, so a
wake-up for a probe that frames moved on is no stall) judges nobody: the stall is
excused on every link (its silence, its deadline, the video allowance and a move's
handover move on by the stall) and a re-check after the readers ran judges. A stall
between two wake-ups that ends just after a due time is not late enough to tell, so a
verdict (any timeout or deadline) is given only by a wake-up that follows another
within a tick; otherwise it waits for a re-check ``RECHECK_S`` later, when our loop
has passed once and its readers with it. A neighbour that died is still found one
timeout and a tick after we run again. Our neighbours cannot excuse our stall: a parent
keeps a child silent for up to ``child_timeout_s``, a child leaves a parent silent for
``link_timeout_s`` (it cannot tell a starved parent from a frozen one).

Reversal. A peer nobody can dial (behind a NAT) is no join candidate, yet it can dial
out: ``offer`` dials a reachable peer outside the tree and says Hello; that peer, if it
needs a parent and takes offers from us (``offers_from``: the driver lists the attached
peers nobody can dial), sends its JoinRequest back on the same link. From there the
link is like any other.

Moving up. A repaired subtree lands wherever there was room, often deep. Every
``MOVE_CHECK_S`` an attached peer looks at the room's candidates; when one with a
free slot is at least ``MOVE_GAIN`` levels closer to the root (and not in our
subtree), it dials it while keeping its parent, and only on Accept (whose path is
checked as for any join) switches: make before break, so video keeps flowing. With
``handover_s`` (the node; the simulator carries no media) the Accept does not switch
yet: the new parent is *incoming* (pinged, its path kept current) while the old one
still feeds us, and the media side calls ``take_over`` once the new parent's frames
continue the stream we have (its first keyframe, or the same encoder's next frame);
then the old parent is closed. A new parent whose media does not continue ours within
``handover_s`` is given up (we stay); an old parent lost meanwhile hands over at
once, with the new parent's frames from its keyframe on. A
peer whose depth grows by ``MOVE_GAIN`` or more (a repair moved an ancestor's subtree
to the bottom of the tree) looks at once instead of at its next check: in a room of
thousands an ancestor's repair can add a whole subtree's height to everyone below it.
A move refused with a Redirect follows it while the level named is still worth it
(listed free places are often taken by the time we dial); a refused place is not
dialled for a move again for a while, and the refusals per while are bounded.

Shedding. A parent whose uplink cannot feed all its children sends the newest away
(``shed_child``) to places with room: its siblings the room lists with free slots,
else other listed places outside that child's subtree. With ``handover_s`` this is a
move too: the parent sends the child a ``Redirect`` on its link and keeps feeding it;
the child dials the places named (following their Redirects, a bounded number of
dials) while keeping its parent, and hands over as in a move; the parent closes the
link with a Bye naming the same places only if the child is still there after
``SHED_GRACE_S`` (a peer that predates this ignores a Redirect from its parent and
re-joins after that Bye, as it always did).

Fencing. ``epoch`` is the newest stream epoch accepted; the directory decides what is
live (tracker epochs only grow; on a LAN the tie-break winner may hold a lower one).
An Accept from a tree of a stale epoch is withdrawn. With ``signed`` (the node; the
simulator carries no media) an epoch from a neighbour is believed only inside the
streamer's signed announcement (announce.py): an Accept without a valid one is
withdrawn, a forged ``StreamAnnounce`` from the parent closes it, and a verified one
is passed to every child.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

from peer.node import layers
from peer.node.tree.actions import (
    Action,
    ChildAttached,
    ChildDetached,
    ChildLayerChanged,
    Close,
    Dial,
    LinkId,
    ParentAttached,
    ParentDetached,
    PeerIdentified,
    PingDue,
    Report,
    Send,
)
from peer.node.tree.announce import AVOID_FORGER_S, accept_problem, announcement_problem
from protocol import (
    Accept,
    Bye,
    Candidate,
    ErrorCode,
    Hello,
    JoinRequest,
    LayerDemand,
    Message,
    PathEntry,
    PathUpdate,
    Redirect,
    StreamAnnounce,
    limits,
)
from protocol.fields import WILDCARD_HOSTS as _WILDCARD_HOSTS
from protocol.stream_auth import Announcement

# What the old parent hears when we leave it for a place it asked us to move on to.
_MOVED_ON = "moved on as asked"
# Connection reversal: an orphan we offered ourselves to is not dialled again for this
# long (it may have found a parent, or not want us).
OFFER_AGAIN_S = 5.0
# A round gives up after this many dials, then waits and starts over with fresh
# candidates (the directory may have moved on meanwhile).
MAX_JOIN_ATTEMPTS = 24
# Back-off between rounds: quick at first (a join storm settles within a few hundred
# ms), then once a second.
JOIN_RETRY_S = (0.05, 0.2, 0.5, 1.0)
# A parent we lost is not dialled again for this long (it may be frozen, not gone).
AVOID_LOST_PARENT_S = 5.0
# How often an attached peer looks for a place closer to the root, and how many levels
# closer it must be to move (a repair moves a subtree whole, often to the bottom of
# the tree; moving up later keeps the depth near log_k N under churn).
MOVE_CHECK_S = 5.0
MOVE_GAIN = 2
# A place that refused a move (full by now, gone, silent) is not dialled for a move
# again for this long (the room may list it as free until its next refresh), and the
# next best place is tried this soon: one stale entry does not cost a whole check.
MOVE_REFUSED_S = 20.0
MOVE_RETRY_S = 0.5
# At most this many refused moves within MOVE_REFUSED_S (a hostile redirector cannot
# keep us dialling).
MOVE_MAX_REFUSED = 64
# How long the node's moves wait for the new parent's media to continue ours (its
# keyframe comes within a few hundred ms: the parent asks upstream for one when a child
# joins, and the producer serves such requests every 0.5 s at most).
MEDIA_HANDOVER_S = 3.0
# A child asked to move on (shed) is closed if it is still ours after this long: its
# handover takes a dial and a keyframe (a few hundred ms); meanwhile it still costs us.
SHED_GRACE_S = 2.0
# A shed child tries at most this many places (the ones named, and their Redirects).
MOVE_ON_MAX_DIALS = 8
# One parent's requests to move on are followed at most this often (a hostile parent
# cannot keep us dialling).
MOVE_ON_AGAIN_S = 3.0


class RoomView(Protocol):
    """What the tree needs to know about the room (the node's directory, or the
    simulator's). Pure queries: nothing here does I/O."""

    def candidates(self) -> list[Candidate]:
        """Peers that may take a child, best first."""

    def subtree(self, peer_id: str, children: set[str]) -> set[str]:
        """Our descendants as the room last described them (a hint; the path check
        is what guarantees no loop). ``children`` are our direct children's ids."""

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        """Whether a tree of ``epoch`` is the current stream, given the newest seen."""

    def reachable(self) -> bool:
        """Whether others can dial us (peers that cannot are leaves only)."""

    def advertised(self) -> tuple[str | None, int | None]:
        """Where children should dial us (host may be unknown yet)."""


@dataclass(frozen=True, slots=True)
class TreeTiming:
    """The protocol's timers (seconds). Tests and the simulator shorten them."""

    # The tick: the timer's grain, not its rate (see "Timer"): a parent whose Hello lacks
    # ``slow_pings`` is pinged this often, a wake-up more than half of it late is our
    # own stall, and a dead neighbour is found within its timeout and one of it.
    ping_interval_s: float = 0.25
    link_timeout_s: float = 1.0  # a parent silent this long (not a byte) is dead
    connect_timeout_s: float = 2.0  # dial, and then again for the join's answer
    # A parent that answers pings but sends no video this long while the stream is
    # live (and not paused) is failed (see ``video_arrived``); doubled after each such
    # failure in a row, so a source that stalls does not make the whole tree churn.
    # Off unless the adapter reports video (the node does; the simulator has none).
    video_timeout_s: float = math.inf
    # While video flows the parent is proven alive by it; a child still pings this
    # often (its own sign of life at the parent, and the clock-offset probe).
    keepalive_s: float = 1.0
    # A child silent this long is dead (never less than ``link_timeout_s``): a few
    # keepalives, so a child starved for seconds is not dropped.
    child_timeout_s: float = 4.0


# However often parents in a row fall silent, one is given at most this long.
_MAX_VIDEO_TIMEOUT_S = 30.0
# A parent that says it is repairing its own path is not failed for sending no video
# for this long (a repair is a few round trips and a connect timeout or two), and one
# parent link is believed at most once per REPAIR_GRACE_EVERY_S (a hostile relay that
# claims to repair forever gets no more than this share of silence).
REPAIR_GRACE_S = 8.0
REPAIR_GRACE_EVERY_S = 30.0
# A parent silent (not a byte) for this share of the link timeout is probed with a Ping:
# its Pong has the rest (half a second by default; a round trip is tens of ms) to come.
# While video flows the probe never comes due: each frame moves it on.
QUIET_PROBE_SHARE = 0.5
# A verdict found due at a wake-up with none in the tick before waits this long for a
# re-check: our loop then passes once, and its readers parse what arrived before the
# verdict (after our own stall, perhaps everything the neighbour sent meanwhile).
RECHECK_S = 0.002


class Role(Enum):
    PENDING = "pending"  # handshake (or join) in progress
    PARENT = "parent"
    CHILD = "child"


@dataclass(slots=True)
class _Link:
    id: LinkId
    outbound: bool
    opened_at: float
    last_heard: float  # anything arrived, a Pong included
    remote_host: str | None = None  # the address we see (inbound links)
    candidate: Candidate | None = None  # what we dialled (outbound links)
    connected: bool = False  # outbound: the TCP connection is up
    role: Role = Role.PENDING
    peer_id: str | None = None
    name: str = "?"
    layer: int = 0  # a child's demand
    sound: bool = True  # a child's subtree wants sound
    auto: bool = False  # a child's subtree takes less when its path cannot carry it
    listen: tuple[str, int] | None = None  # a child's listen address
    deadline: float | None = None  # when a pending link is closed unless it moved on
    reverse: bool = False  # we dialled to offer ourselves as its parent (reversal)
    flowed_at: float = -math.inf  # the latest message that was not a Pong
    pinged_at: float = -math.inf  # our latest Ping on it (a parent: set at attach)
    slow_pings: bool = False  # its Hello: it holds a child that pings each keepalive
    repair_grace_at: float = -math.inf  # (a parent) when its repair notice was believed


@dataclass(slots=True)
class StreamInfo:
    """The stream as the tree knows it (from Accept, or our own source at the root)."""

    width: int = 0
    height: int = 0
    fps: float = 30.0
    codec: str = "mjpeg"  # the video codec of every layer (Accept says it)


@dataclass(slots=True)
class _Round:
    queue: list[Candidate]
    tried: set[str]
    attempts: int = 0


@dataclass(slots=True)
class TreeCounters:
    """What happened, for stats and the simulator."""

    joins: int = 0
    dials: int = 0
    redirects: int = 0
    loops_refused: int = 0
    parents_lost: int = 0
    silent_parents: int = 0  # parents left for sending no video
    repair_graces: int = 0  # parents' repair notices believed (their silence excused)
    forged_parents: int = 0  # parents left for sending forged media or announcements
    children_refused: int = 0
    moves: int = 0


class TreeState:
    """The tree protocol of one peer (see the module's theory of operation).

    Args:
        peer_id: our id.
        name: our display name.
        room: the room we are in (a Hello from another room is refused).
        fanout: how many children we accept (0 when the room says we are unreachable).
        layer: the layer we watch.
        room_view: what we know about the room.
        timing: the protocol's timers.
        now: the time of creation.
        signed: believe a stream only inside a verified signed announcement.
        handover_s: a move's new parent becomes ours only when the media side says
            its frames continue ours (``take_over``), given up after this long; 0:
            at its Accept (the simulator, which carries no media).
    """

    def __init__(self, *, peer_id: str, name: str, room: str, fanout: int, layer: int,
                 room_view: RoomView, timing: TreeTiming, now: float,
                 signed: bool = False, handover_s: float = 0.0) -> None:
        self.peer_id = peer_id
        self.name = name
        self.room = room
        self.fanout = fanout
        self.timing = timing
        self.counters = TreeCounters()
        self.stream = StreamInfo()
        self.epoch = 0
        self._signed = signed
        # The verified announcement of the stream we carry (ours at the root).
        self.announcement: Announcement | None = None
        self._room = room_view
        self._layer = layer
        self._links: dict[LinkId, _Link] = {}
        self._next_id = 1
        self._parent: _Link | None = None
        self._children: list[_Link] = []
        self._path: tuple[PathEntry, ...] = ()  # root .. parent when attached
        self._root = False
        self._streamer_id: str | None = None
        # Silent-parent detection: when live video last came from the parent (reset
        # at attach), whether the room is paused, and the current silence allowance.
        self._video_at: float | None = None
        self._video_paused = False
        self._video_timeout = timing.video_timeout_s
        # Until when the parent's repair notice holds (see "Repair notices").
        self._repair_grace_until = -math.inf
        self._stopping = False
        self._demand_sent: tuple[int, bool, bool] | None = None
        # Whether this peer itself plays or records sound (the driver says, see
        # ``set_sound``); what we ask for is that or any child's subtree's wish.
        self._sound = True
        # We watch on "auto": our parent may send us less than our layer.
        self.auto = False
        self._preferred: list[Candidate] = []
        self._avoid: dict[str, float] = {}
        self._round: _Round | None = None
        self._joining: _Link | None = None
        self._moving = False  # the join in flight is a move of an attached peer
        # A move's new parent that accepted us, until its media continues ours (see
        # ``take_over``): its Accept, its latest path, and when we give up on it.
        self._handover_s = handover_s
        self._incoming: _Link | None = None
        self._incoming_accept: Accept | None = None
        self._incoming_path: tuple[PathEntry, ...] = ()
        self._incoming_until = math.inf
        self._incoming_why = ""  # what the old parent hears when we go
        # Our parent asked us to move on (a shed): the places still to try, dials so
        # far, and whether the move in flight is one of those.
        self._move_on: list[Candidate] = []
        self._move_on_dials = 0
        self._moving_on = False
        self._move_on_asked: tuple[LinkId, float] | None = None  # by which parent, when
        # Children we asked to move on (link id -> when we close them if still ours).
        self._shedding: dict[LinkId, float] = {}
        self._next_move_check = now + MOVE_CHECK_S
        self._move_refused: dict[str, float] = {}  # peer id -> until when
        self._retry_at: float | None = None
        self._retry_n = 0
        # The timer (see "Timer"): when the driver was last told to wake us (inf: not
        # since the last wake-up), when we last woke, and a re-check asked for.
        self._armed = math.inf
        self._woke_at = -math.inf
        self._recheck_at = -math.inf
        # Whether our subtree asks for video at all (``demand()`` is not NO_VIDEO):
        # kept by ``_update_demand``, so the timer need not compute the demand.
        self._wanting_video = layer != limits.NO_VIDEO
        self._reported: Report | None = None
        self._redirects = 0
        # Connection reversal (see ``offer``): our fanout whatever our reachability,
        # the one offer in flight, when each orphan may be offered to again, and
        # which peers' offers we take.
        self._full_fanout = fanout
        self._offering: set[LinkId] = set()
        self._offered: dict[str, float] = {}
        self.offers_from: frozenset[str] = frozenset()
        # Peers the room lists as nobody can dial (the tracker's connect-back said so,
        # or has not said yet); the driver keeps it current. A full peer's Redirect
        # leaves such children out: behind a router that drops unasked-for SYNs, each
        # dial to one costs the joiner a whole connect timeout, and a reversal or a
        # hole punch (the room's lists) reaches it anyway.
        self.undialable: frozenset[str] = frozenset()
        # Whether our uplink has room for one more child at a layer, next to the ones
        # we have (the node's ``FanoutControl.fits``: a slot counts a child at its
        # layer's cap, so a joiner above our children's layers may need more than a
        # free slot); None: the slot count alone decides.
        self.admits: Callable[[int], bool] | None = None
        # A peer whose offer we asked for (a hole punch, punching.py): it beats a dial
        # still under way, which may take a whole connect timeout to fail.
        self.awaited_offer: str | None = None

    # --- queries -----------------------------------------------------------------

    @property
    def is_root(self) -> bool:
        return self._root

    @property
    def attached(self) -> bool:
        """Root, or a viewer with a parent: frames flow to us."""
        return self._root or self._parent is not None

    @property
    def depth(self) -> int | None:
        if self._root:
            return 0
        return len(self._path) if self._parent is not None else None

    @property
    def path(self) -> tuple[PathEntry, ...]:
        """Root .. parent (empty when detached or when we are the root)."""
        return self._path

    @property
    def parent(self) -> LinkId | None:
        return self._parent.id if self._parent is not None else None

    @property
    def parent_name(self) -> str | None:
        return self._parent.name if self._parent is not None else None

    @property
    def parent_id(self) -> str | None:
        return self._parent.peer_id if self._parent is not None else None

    @property
    def incoming(self) -> LinkId | None:
        """A move's new parent while the old one still feeds us (see ``take_over``)."""
        return self._incoming.id if self._incoming is not None else None

    @property
    def incoming_path(self) -> tuple[PathEntry, ...]:
        """Root .. the incoming parent (empty when there is none)."""
        return self._incoming_path if self._incoming is not None else ()

    @property
    def children(self) -> list[LinkId]:
        return [c.id for c in self._children]

    def is_child(self, link: LinkId) -> bool:
        """Whether ``link`` leads to one of our children (no list built: hot path)."""
        entry = self._links.get(link)
        return entry is not None and entry.role is Role.CHILD

    @property
    def layer(self) -> int:
        return self._layer

    def child_layer(self, link: LinkId) -> int:
        """The (clamped) layer a child's subtree needs."""
        return self.clamp(self._links[link].layer)

    def peer_of(self, link: LinkId) -> tuple[str | None, str]:
        """The (peer id, name) on a link; (None, "?") before its Hello."""
        entry = self._links.get(link)
        return (entry.peer_id, entry.name) if entry is not None else (None, "?")

    def clamp(self, layer: int) -> int:
        """``layer``, lowered to the source's height when we know it (``NO_VIDEO``
        stays as it is)."""
        if self.stream.height <= 0 or layer == limits.NO_VIDEO:
            return layer
        return layers.clamp_layer(layer, self.stream.height)

    def available_layers(self) -> tuple[int, ...]:
        """The layers this stream offers (all of them while its size is unknown)."""
        if self.stream.height <= 0:
            return limits.LAYERS
        return layers.available_layers(self.stream.height)

    def view_size(self) -> tuple[int, int]:
        """The (width, height) we show: the source's at the root, our layer's below;
        (0, 0) with no stream, or when we watch none of it (``NO_VIDEO``)."""
        stream = self.stream
        if stream.height <= 0 or (not self._root and self._layer == limits.NO_VIDEO):
            return 0, 0
        if self._root:
            return stream.width, stream.height
        return layers.layer_size(self.clamp(self._layer), stream.width, stream.height)

    def view_size_for(self, layer: int) -> tuple[int, int] | None:
        """The size to show a received frame of ``layer`` at, when it is larger than
        what we watch (our parent sends our subtree's largest); None: as it is."""
        want = self.clamp(self._layer)
        stream = self.stream
        if layer <= want or stream.height <= 0 or want == limits.NO_VIDEO:
            return None  # NO_VIDEO: a frame sent before our demand arrived
        return layers.layer_size(want, stream.width, stream.height)

    def is_live_epoch(self, epoch: int) -> bool:
        """Whether frames (or a tree) of ``epoch`` belong to the current stream."""
        return self._room.is_live_epoch(epoch, self.epoch)

    def frame_epoch(self, epoch: int) -> bool:
        """A video frame of ``epoch`` arrived from the parent: True when it is live
        (and then it is the newest epoch); False means fence it off."""
        if not self.is_live_epoch(epoch):
            return False
        self.epoch = epoch
        return True

    def video_arrived(self, now: float) -> None:
        """A live video frame came from the parent (after ``frame_epoch`` said live)."""
        self._video_at = now
        self._video_paused = False
        self._video_timeout = self.timing.video_timeout_s

    def set_video_paused(self, paused: bool, now: float) -> None:
        """The room's playback paused (no video is due) or resumed (due again)."""
        if self._video_paused and not paused:
            self._video_at = now  # the silence allowance starts again
        self._video_paused = paused

    def demand(self) -> int:
        """What our subtree needs from our parent: max(own layer, children's)."""
        return self.clamp(max([self._layer] + [c.layer for c in self._children]))

    @property
    def wants_sound(self) -> bool:
        """Whether this peer itself plays or records sound."""
        return self._sound

    def sound_demand(self) -> bool:
        """Whether our subtree wants sound from our parent: ours or any child's."""
        return self._sound or any(c.sound and c.layer != limits.NO_VIDEO
                                  for c in self._children)

    def child_wants_sound(self, link: LinkId) -> bool:
        """Whether a child gets sound: its subtree asked for it and watches (a subtree
        that asked for ``NO_VIDEO`` gets chat and control only)."""
        child = self._links.get(link)
        return child is not None and child.role is Role.CHILD and child.sound \
            and child.layer != limits.NO_VIDEO

    def leave_hints(self) -> tuple[Candidate, ...]:
        """Where our children should go when we leave: our parent first."""
        hints: list[Candidate] = []
        if self._path:
            p = self._path[-1]
            if p.host and p.port:
                hints.append(Candidate(p.id, p.name, p.host, p.port, len(self._path) - 1, 1))
        mine = self._subtree() | {self.peer_id}
        hints += [c for c in self._room.candidates() if c.id not in mine]
        return tuple(hints[: limits.MAX_CANDIDATES])

    # --- links ---------------------------------------------------------------------

    def inbound(self, now: float, remote_host: str | None) -> LinkId:
        """A neighbour connected to us; returns the id to use for its link."""
        link = self._new_link(now, outbound=False)
        link.remote_host = remote_host
        link.deadline = now + 2 * self.timing.connect_timeout_s
        return link.id

    def connected(self, link_id: LinkId, now: float) -> list[Action]:
        """A dial succeeded: say hello and ask to join."""
        link = self._links.get(link_id)
        if link is not None and link.id in self._offering:
            link.connected = True
            link.last_heard = now
            return [Send(link.id, self._hello())]
        if link is None or link is not self._joining:
            return [Close(link_id, "join no longer needed")] if link is None else []
        link.connected = True
        link.last_heard = now
        link.deadline = now + self.timing.connect_timeout_s
        host, port = self._room.advertised()
        return [Send(link.id, self._hello()),
                Send(link.id, JoinRequest(layer=self.demand(), listen_host=host,
                                          listen_port=port,
                                          sound=self.sound_demand()))]

    def heard(self, link_id: LinkId, now: float, *, answer: bool = False) -> None:
        """Something arrived on ``link`` at ``now`` (call it for every message, video
        included; the hot path). ``answer``: only the Pong to our Ping (or bytes not
        yet a whole message): the link lives, yet nothing flows on it that would
        spare a probe (a quiet parent's next probe counts from the Ping answered, not
        from its Pong). Only moves due times later: the driver need not re-arm its
        timer for it (see "Timer")."""
        link = self._links.get(link_id)
        if link is not None:
            if now > link.last_heard:
                link.last_heard = now
            if not answer and now > link.flowed_at:
                link.flowed_at = now

    def link_closed(self, link_id: LinkId, reason: str, now: float) -> list[Action]:
        """The link is gone (EOF, error, failed dial, or we closed it)."""
        link = self._links.get(link_id)
        if link is None:
            return []
        return self._forget(link, reason, now, stream_over=False)

    def receive(self, link_id: LinkId, message: Message, now: float) -> list[Action]:
        """A tree control message arrived on ``link``.

        Handles Hello, JoinRequest, Accept, Redirect, PathUpdate, LayerDemand and Bye.
        Anything else closes the link with ``ErrorCode.UNEXPECTED``: the driver routes
        video, pings, chat and errors elsewhere.
        """
        link = self._links.get(link_id)
        if link is None:
            return []
        if now > link.last_heard:
            link.last_heard = now
        if now > link.flowed_at:
            link.flowed_at = now
        if isinstance(message, Hello):
            return self._on_hello(link, message, now)
        if isinstance(message, JoinRequest):
            return self._on_join_request(link, message, now)
        if isinstance(message, Accept):
            return self._on_accept(link, message, now)
        if isinstance(message, Redirect):
            return self._on_redirect(link, message, now)
        if isinstance(message, PathUpdate):
            if link is self._incoming:
                return self._incoming_path_update(message.path, now)
            if link is not self._parent:
                return []
            return self._set_path(message.path, now, repairing=message.repairing)
        if isinstance(message, LayerDemand):
            return self._on_layer_demand(link, message, now)
        if isinstance(message, Bye):
            return self._on_bye(link, message, now)
        if isinstance(message, StreamAnnounce):
            return self._on_announce(link, message, now) if link is self._parent else []
        kind = type(message).__name__
        return self._close(link, f"unexpected {kind} on a peer link", now,
                           Bye(reason=f"unexpected {kind}", code=int(ErrorCode.UNEXPECTED)))

    # --- commands ------------------------------------------------------------------

    def set_layer(self, layer: int, now: float, *, auto: bool = False) -> list[Action]:
        """The layer we watch changed (``auto``: at most that, as the path allows);
        demand follows upstream at once."""
        self._layer = layer
        self.auto = auto
        return self._update_demand(now) + self._report()

    def set_sound(self, wanted: bool, now: float) -> list[Action]:
        """Whether this peer itself plays or records sound (it started or stopped
        playing, a recording began or ended); demand follows upstream at once."""
        self._sound = wanted
        return self._update_demand(now)

    def set_reachable(self, reachable: bool, fanout: int, now: float) -> list[Action]:
        """Change how many children we take (0 for a peer nobody can dial)."""
        self.fanout = fanout if reachable else 0
        self._full_fanout = fanout
        return self._report()

    def shed_child(self, now: float) -> list[Action]:
        """Our uplink cannot feed all our children: the newest moves to a place with
        room (a sibling the room lists with free slots, a level deeper, else another
        listed place). With ``handover_s`` it is asked to move on (a Redirect) and fed
        until it has, for at most ``SHED_GRACE_S``; without, it is closed with a Bye
        naming those places."""
        if len(self._children) < 2 or self._shedding:
            return []  # (one at a time: its leaving changes what the uplink carries)
        child = self._children[-1]
        hints = self._shed_hints(child)
        if self._handover_s > 0:
            self._shedding[child.id] = now + SHED_GRACE_S
            return [Send(child.id, Redirect(candidates=hints,
                                            reason="my uplink is full: move to one of these"))]
        return self._close(child, "uplink full", now,
                           Bye(reason="my uplink is full: join one of these",
                               candidates=hints))

    def _shed_hints(self, child: _Link) -> tuple[Candidate, ...]:
        """Where a shed child should go: siblings with room (those the room lists as
        full are left out: landing there, it would be shed again at the next keyframe;
        one the room does not list may have room), then other places the room lists
        with free slots, outside its subtree (and not us: we are full), those outside
        our own subtree first."""
        listed = {c.id: c for c in self._room.candidates()}
        siblings = [c for c in self._child_candidates(exclude=child.peer_id)
                    if c.id not in listed or listed[c.id].free_slots > 0]
        theirs = self._room.subtree(child.peer_id or "", set()) | {
            self.peer_id, child.peer_id or "", *(c.id for c in siblings)}
        others = [c for c in listed.values() if c.free_slots > 0 and c.id not in theirs]
        # Places outside our subtree first: their stream does not wait in our (full)
        # uplink's queues on its way, as a grandchild's does.
        ours = self._subtree()
        others.sort(key=lambda c: c.id in ours)
        return tuple([*siblings, *others][: limits.MAX_CANDIDATES])

    def _shed_due(self, now: float) -> list[Action]:
        """Children asked to move on that are still ours after the grace: closed."""
        actions: list[Action] = []
        for link_id, until in list(self._shedding.items()):
            child = self._links.get(link_id)
            if child is None or child.role is not Role.CHILD:
                del self._shedding[link_id]
            elif now >= until:
                del self._shedding[link_id]
                actions += self._close(child, "uplink full", now,
                                       Bye(reason="my uplink is full: join one of these",
                                           candidates=self._shed_hints(child)))
        return actions

    def set_streamer(self, streamer_id: str | None, epoch: int, now: float) -> list[Action]:
        """The directory says who streams (None: nobody) with which epoch."""
        actions: list[Action] = []
        previous = self._streamer_id
        self._streamer_id = streamer_id
        if previous in (None, self.peer_id) and streamer_id not in (None, self.peer_id) \
                and self._video_at is not None:
            # Video is due from our parent again: the silence allowance starts now (and
            # the timer is never armed for a moment already past, which would look
            # like our own stall).
            self._video_at = max(self._video_at, now)
        if streamer_id is not None:
            # The directory is the authority on the current epoch (on a LAN the
            # tie-break winner may hold the lower one).
            self.epoch = epoch
            parent = self._parent
            if streamer_id != previous and parent is not None and len(self._path) == 1 \
                    and self._path[0].id != streamer_id:
                # A new root: the old root's children move, with their subtrees (a move
                # under way was to the old tree).
                actions += self._drop_incoming("following the new streamer", now)
                actions += self._close(parent, "following the new streamer", now,
                                       Bye(reason="following the new streamer"))
        return actions + self._pump_join(now)

    def directory_changed(self, now: float) -> list[Action]:
        """The room changed: a waiting join may try again at once."""
        if self._round is None and self._retry_at is not None:
            self._retry_at = now
        return self._pump_join(now)

    def become_root(self, epoch: int, stream: StreamInfo, now: float,
                    announce: Callable[[int], Announcement] | None = None) -> list[Action]:
        """We hold the streamer lock: leave our parent, let old children re-join.
        ``announce``: makes our signed announcement for the epoch our frames will
        carry, given to every child in its Accept."""
        actions: list[Action] = self._drop_incoming("became the streamer", now)
        if self._parent is not None:
            actions += self._close(self._parent, "became the streamer", now,
                                   Bye(reason="becoming the streamer"))
        for child in list(self._children):
            # They watched another stream; let them re-join our fresh tree.
            actions += self._close(child, "new stream", now,
                                   Bye(reason="a new stream starts"))
        if self._joining is not None:
            actions += self._close(self._joining, "became the streamer", now,
                                   Bye(reason="join withdrawn"))
        self._root = True
        self._streamer_id = self.peer_id
        self._round = None
        self._retry_at = None
        self.epoch = max(self.epoch, epoch)
        self.stream = stream
        self.announcement = announce(self.epoch) if announce is not None else None
        self._path = ()
        return actions + self._report()

    def end_root(self, now: float) -> list[Action]:
        """Our stream ended: every child hears it (and passes it down)."""
        if not self._root:
            return []
        self._root = False
        if self._streamer_id == self.peer_id:
            self._streamer_id = None
        actions: list[Action] = []
        for child in list(self._children):
            actions += self._close(child, "stream ended", now, _stream_ended())
        return actions + self._report()

    def leave(self, now: float) -> list[Action]:
        """Leave on purpose: the parent hears a Bye, children hear where to go."""
        if self._stopping:
            return []
        actions: list[Action] = []
        if self._root:
            actions += self.end_root(now)
        hints = self.leave_hints()
        self._stopping = True
        for link in list(self._links.values()):
            if link.role is Role.CHILD:
                bye = Bye(reason=f"{self.name} left", candidates=hints)
            else:
                bye = Bye(reason="leaving")
            actions += self._close(link, "leaving", now, bye)
        return actions

    # --- timers --------------------------------------------------------------------

    def get_timer(self) -> float:
        """When ``handle_timer`` is next due: the earliest moment anything can become
        due, from what the state knows now (see "Timer"). The driver arms its one timer
        at it after every batch; the state keeps it to tell how late a wake-up is."""
        due = self._retry_at if self._retry_at is not None else math.inf
        due = min(due, self._next_move_check, self._incoming_until,
                  *self._shedding.values())
        for link in self._links.values():
            if link.deadline is not None:
                if link.deadline < due:
                    due = link.deadline
            elif link.role is Role.CHILD:
                due = min(due, link.last_heard + self._child_timeout())
            elif link.role is Role.PARENT:  # (our parent, or a move's incoming one)
                due = min(due, link.last_heard + self.timing.link_timeout_s,
                          self._probe_due(link))
        due = min(due, self._video_due())
        # A verdict waits for its re-check: nothing is run before it.
        due = max(due, self._recheck_at)
        self._armed = due
        return due

    def handle_timer(self, now: float) -> list[Action]:
        """Run whatever is due: deadlines, heartbeats and timeouts, join retries."""
        tick = self.timing.ping_interval_s
        # How late this wake-up is against the time the driver was told (none told:
        # not late). Measured against that, not against a due time recomputed from
        # fresher facts: a wake-up for something that moved on meanwhile is no stall.
        late = now - self._armed
        self._armed = math.inf
        stalled = late > tick / 2
        if stalled:
            # Our own loop stalled: excuse the stall, judge nobody now (what they sent
            # is still unread), judge at the re-check.
            self._excuse_stall(late, now)
        # A verdict needs a wake-up within a tick before this one: our loop has passed
        # since, and the readers with it (see "Stalls").
        judge = not stalled and now - self._woke_at <= tick
        self._woke_at = now
        self._recheck_at = -math.inf
        recheck = stalled
        actions: list[Action] = []
        timing = self.timing
        child_timeout = self._child_timeout()
        for link in list(self._links.values()):
            if link.deadline is not None:
                if now >= link.deadline:
                    if judge:
                        why = "join timed out" if link is self._joining \
                            else "handshake timed out"
                        actions += self._close(link, why, now)
                    else:
                        recheck = True
            elif link.role is Role.CHILD:
                # Its pings (or anything else) keep a child; it pings at least every
                # keepalive, so a few missed ones (a child starved for seconds) pass.
                if now >= link.last_heard + child_timeout:
                    if judge:
                        actions += self._close(
                            link, f"no heartbeat for {child_timeout:g} s", now,
                            Bye(reason="heartbeat timeout", code=int(ErrorCode.TIMEOUT)))
                    else:
                        recheck = True
            elif link.role is Role.PARENT:  # (our parent, or a move's incoming one)
                if now >= link.last_heard + timing.link_timeout_s:
                    if judge:
                        actions += self._close(
                            link, f"no heartbeat for {timing.link_timeout_s:g} s", now,
                            Bye(reason="heartbeat timeout", code=int(ErrorCode.TIMEOUT)))
                        continue
                    recheck = True
                elif link is self._parent and now >= self._video_due():
                    if judge:
                        # It answers pings but forwards nothing: as good as lost
                        # (issue 13).
                        timeout = self._video_timeout
                        self.counters.silent_parents += 1
                        self._video_timeout = min(2 * timeout, _MAX_VIDEO_TIMEOUT_S)
                        actions += self._close(
                            link, f"no video for {timeout:g} s", now,
                            Bye(reason=f"no video for {timeout:g} s",
                                code=int(ErrorCode.TIMEOUT)))
                        continue
                    recheck = True
                actions += self._probe(link, now)
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            actions += self._pump_join(now)
        if now >= self._next_move_check:
            self._next_move_check = now + MOVE_CHECK_S
            actions += self._consider_moving(now)
        if now >= self._incoming_until:
            if judge:
                actions += self._drop_incoming(
                    "the new parent's video did not continue ours "
                    f"within {self._handover_s:g} s", now)
            else:
                recheck = True
        if self._shedding and now >= min(self._shedding.values()):
            if judge:
                actions += self._shed_due(now)
            else:
                recheck = True
        if recheck:
            self._recheck_at = now + RECHECK_S
        return actions

    def _child_timeout(self) -> float:
        return max(self.timing.child_timeout_s, self.timing.link_timeout_s)

    def _probe_due(self, parent: _Link) -> float:
        """When the parent must next be pinged: a keepalive after our last Ping (every
        tick for a parent whose Hello lacks ``slow_pings``: an older build times a
        child out after ``link_timeout_s``), or once it has been quiet for the quiet
        share of the link timeout, so that its Pong still has the rest to come.
        Quiet counts from its latest message but Pongs (video proves it alive and
        moves the probe on) or our latest Ping, whichever is later: a Pong answers
        that Ping, and the Pong's own arrival (a round trip later) does not move the
        probe, or each probe of a quiet parent would cost a second wake-up (one armed
        before the Pong came, one after)."""
        timing = self.timing
        keepalive = timing.keepalive_s if parent.slow_pings else timing.ping_interval_s
        quiet = max(parent.flowed_at, parent.pinged_at) \
            + timing.link_timeout_s * QUIET_PROBE_SHARE
        return min(parent.pinged_at + keepalive, quiet)

    def _probe(self, parent: _Link, now: float) -> list[Action]:
        """Ping the parent when its probe is due (see ``_probe_due``), or its keepalive
        within half a tick: a wake-up that runs anyway takes it along instead of
        waking again for it. Only the child pings: its pings keep it alive at the
        parent, the parent's Pongs keep a quiet parent alive here and carry the clock
        offsets, which only flow down."""
        timing = self.timing
        keepalive = timing.keepalive_s if parent.slow_pings else timing.ping_interval_s
        if now < self._probe_due(parent) \
                and now < parent.pinged_at + keepalive - timing.ping_interval_s / 2:
            return []
        parent.pinged_at = now
        return [PingDue(parent.id)]

    def _excuse_stall(self, stalled: float, now: float) -> None:
        """Our timer runs ``stalled`` seconds late: our own loop did not run (a starved
        CPU, a stop). Whatever our neighbours sent meanwhile is still unread (in asyncio
        a reader task parses it one loop iteration after this timer), and the Pings we
        owed a quiet parent were not sent, so silence measured across our stall is
        ours, not theirs: it counts for no link's timeout, deadline or video allowance.
        A dead neighbour is still found: one timeout (and a tick) after we run again
        at most."""
        for link in self._links.values():
            link.last_heard = min(now, link.last_heard + stalled)
            if link.deadline is not None:
                link.deadline += stalled  # due again at once, after the readers ran
        if self._video_at is not None:
            self._video_at = min(now, self._video_at + stalled)
        # A move's new parent whose media may be among the unread, a shed child that
        # may have moved on meanwhile: judged at the re-check too.
        self._incoming_until += stalled
        self._shedding = {k: until + stalled for k, until in self._shedding.items()}

    def _video_due(self) -> float:
        """When the parent has sent no video for longer than the allowance while some
        was due (inf: none is due, or the allowance is off). Silence under a parent's
        repair notice does not count (see "Repair notices"): the allowance runs from
        the notice's end."""
        if self._video_at is None or self._video_timeout == math.inf \
                or not self._wanting_video or self._video_paused \
                or self._streamer_id is None or self._streamer_id == self.peer_id:
            # Nothing has started the allowance, none is kept (the timeout is off: it
            # stays off), nobody here wants video (so none comes; the allowance starts
            # again once some is due), the room is paused, or nothing is live.
            return math.inf
        return max(self._video_at, self._repair_grace_until) + self._video_timeout

    def _repair_notice(self, repairing: bool, now: float) -> bool:
        """The parent's PathUpdate says whether it is repairing: believe a notice if
        this parent link had none believed for ``REPAIR_GRACE_EVERY_S``; a PathUpdate
        without the flag ends one (the allowance counts from now). True while one
        holds: our children are told so too."""
        parent = self._parent
        if parent is None:
            return False
        if not repairing:
            self._repair_grace_until = min(self._repair_grace_until, now)
            return False
        if now - parent.repair_grace_at >= REPAIR_GRACE_EVERY_S:
            parent.repair_grace_at = now
            self._repair_grace_until = now + REPAIR_GRACE_S
            self.counters.repair_graces += 1
        return now < self._repair_grace_until

    # --- handshake and joining -----------------------------------------------------

    def _hello(self) -> Hello:
        return Hello(peer_id=self.peer_id, name=self.name, room=self.room)

    def _on_hello(self, link: _Link, hello: Hello, now: float) -> list[Action]:
        if not set(hello.versions) & set(limits.SUPPORTED_VERSIONS):
            return self._close(link, "no common protocol version", now, Bye(
                reason=f"no common protocol version (we speak "
                       f"{list(limits.SUPPORTED_VERSIONS)})", code=int(ErrorCode.BAD_VERSION)))
        if hello.room != self.room:
            return self._close(link, "wrong room", now, Bye(
                reason=f"this peer is in room {self.room!r}", code=int(ErrorCode.UNEXPECTED)))
        if link.peer_id is not None:
            return self._close(link, "second hello", now, Bye(
                reason="hello sent twice", code=int(ErrorCode.UNEXPECTED)))
        link.peer_id, link.name = hello.peer_id, hello.name
        link.slow_pings = hello.slow_pings
        actions: list[Action] = [PeerIdentified(link.id, hello.peer_id, hello.name)]
        if not link.outbound:
            actions.append(Send(link.id, self._hello()))
            actions += self._take_offer(link, now)
        return actions

    def _on_join_request(self, link: _Link, request: JoinRequest, now: float) -> list[Action]:
        if link.peer_id is None or link.role is not Role.PENDING or (
                link.outbound and not link.reverse):
            return self._close(link, "join before hello", now, Bye(
                reason="join request before hello", code=int(ErrorCode.UNEXPECTED)))
        if link.peer_id == self.peer_id or any(p.id == link.peer_id for p in self._path):
            # Adopting an ancestor would close a loop: it must look elsewhere.
            self.counters.loops_refused += 1
            redirect = Redirect(candidates=(), reason="you are my ancestor")
        elif not self.attached or self._stopping:
            redirect = Redirect(candidates=(), reason="not attached to the stream")
        elif len(self._children) >= (self._full_fanout if link.reverse else self.fanout) \
                or (self.admits is not None and not self.admits(request.layer)):
            redirect = Redirect(candidates=self._child_candidates(exclude=link.peer_id),
                                reason="full")
        else:
            link.role = Role.CHILD
            link.deadline = None
            self._offering.discard(link.id)
            link.layer = request.layer
            link.sound = request.sound
            host = request.listen_host
            if not host or host in _WILDCARD_HOSTS:
                host = link.remote_host
            link.listen = (host, request.listen_port) if host and request.listen_port else None
            self._children.append(link)
            accept = Accept(path=self._own_path(), epoch=self.epoch,
                            source_width=self.stream.width, source_height=self.stream.height,
                            fps=self.stream.fps, codec=self.stream.codec,
                            ann=self.announcement)
            return [Send(link.id, accept),
                    ChildAttached(link.id, link.peer_id, link.name, link.layer),
                    *self._update_demand(now), *self._report()]
        # Refused: the joiner closes after reading the redirect; we close if it lingers.
        self.counters.children_refused += 1
        link.deadline = now + self.timing.connect_timeout_s
        return [Send(link.id, redirect)]

    def _on_accept(self, link: _Link, accept: Accept, now: float) -> list[Action]:
        if link is not self._joining:
            return []  # an answer to a join we gave up on; its link is closing
        self._joining = None
        moving, self._moving = self._moving, False
        moving_on, self._moving_on = self._moving_on, False
        if any(p.id == self.peer_id for p in accept.path):
            self.counters.loops_refused += 1
            return self._close(link, "loop", now, Bye(reason="join withdrawn: loop",
                                                       code=int(ErrorCode.LOOP))) \
                + self._pump_join(now)
        if not self._room.is_live_epoch(accept.epoch, self.epoch):
            return self._close(link, "stale epoch", now, Bye(
                reason="join withdrawn: an older stream", code=int(ErrorCode.STALE_EPOCH))) \
                + self._pump_join(now)
        if self._signed and (problem := accept_problem(accept, self._streamer_id)):
            if link.peer_id:
                self._avoid[link.peer_id] = now + AVOID_FORGER_S
            return self._close(link, problem, now, Bye(
                reason=f"join withdrawn: {problem}", code=int(ErrorCode.FORGED))) \
                + self._pump_join(now)
        actions: list[Action] = []
        old = self._parent
        if moving and old is not None:
            if self._root or self._stopping or (
                    not moving_on and len(accept.path) + MOVE_GAIN > len(self._path)):
                return self._close(link, "move no longer worth it", now,
                                   Bye(reason="join withdrawn"))
            self._move_on = []
            why = _MOVED_ON if moving_on else "moved closer to the root"
            if self._handover_s > 0:
                # The old parent feeds us until the new one's media continues ours.
                link.role = Role.PARENT  # pinged, and timed out when silent
                link.deadline = None
                self._incoming = link
                self._incoming_accept = accept
                self._incoming_path = accept.path
                self._incoming_until = now + self._handover_s
                self._incoming_why = why
                return self._first_ping(link, now)
            # Make before break: the new parent is ours; the old one hears why we go.
            actions += self._leave_old_parent(old, why)
        elif not self._wants_join():
            return self._close(link, "no longer needed", now, Bye(reason="join withdrawn"))
        return actions + self._attach(link, accept, now)

    def take_over(self, now: float) -> list[Action]:
        """The incoming parent's frames continue the stream we have (the media side
        checked): it becomes our parent, and the old one is closed."""
        link, accept = self._incoming, self._incoming_accept
        old = self._parent
        if link is None or accept is None or old is None:
            return []
        path, why = self._incoming_path, self._incoming_why
        self._clear_incoming()
        accept = replace(accept, path=path)
        return self._leave_old_parent(old, why) + self._attach(link, accept, now,
                                                               handed_over=True)

    def refuse_incoming(self, reason: str, now: float) -> list[Action]:
        """The incoming parent sent forged media: give it up (and avoid it a while)."""
        link = self._incoming
        if link is None:
            return []
        self.counters.forged_parents += 1
        if link.peer_id:
            self._avoid[link.peer_id] = now + AVOID_FORGER_S
        return self._close(link, reason, now, Bye(reason=reason[:limits.MAX_REASON_CHARS],
                                                  code=int(ErrorCode.FORGED)))

    def _leave_old_parent(self, old: _Link, why: str) -> list[Action]:
        self._parent = None
        del self._links[old.id]
        self.counters.moves += 1
        return [Close(old.id, why, Bye(reason=why))]

    def _clear_incoming(self) -> None:
        self._incoming = None
        self._incoming_accept = None
        self._incoming_path = ()
        self._incoming_until = math.inf

    def _drop_incoming(self, reason: str, now: float) -> list[Action]:
        """Give up a move's new parent (we stay where we are)."""
        if self._incoming is None:
            return []
        return self._close(self._incoming, reason, now, Bye(reason="move withdrawn"))

    def _incoming_path_update(self, path: tuple[PathEntry, ...], now: float) -> list[Action]:
        if any(p.id == self.peer_id for p in path):
            self.counters.loops_refused += 1
            return self._drop_incoming("loop detected", now)
        self._incoming_path = path
        return []

    def _attach(self, link: _Link, accept: Accept, now: float, *,
                handed_over: bool = False) -> list[Action]:
        """``link`` (which accepted us) becomes our parent."""
        actions: list[Action] = []
        link.role = Role.PARENT
        link.deadline = None
        self._parent = link
        self._video_at = now  # the silence allowance starts at attach
        self._repair_grace_until = -math.inf  # (the old parent's notice is no more)
        self._round = None
        self._retry_at = None
        self._retry_n = 0
        self.counters.joins += 1
        self.epoch = max(self.epoch, accept.epoch)
        if accept.source_width and accept.source_height:
            self.stream = StreamInfo(accept.source_width, accept.source_height, accept.fps,
                                     accept.codec)
        else:
            self.stream.fps = accept.fps
            self.stream.codec = accept.codec
        self._demand_sent = None
        actions.append(ParentAttached(link.id, link.peer_id or "", link.name,
                                      len(accept.path), accept, handed_over))
        actions += self._set_path(accept.path, now)
        actions += self._update_demand(now)
        if self._signed and accept.ann is not None:
            actions += self._adopt(accept.ann)
        return actions + (self._first_ping(link, now) if self._parent is link else [])

    @staticmethod
    def _first_ping(link: _Link, now: float) -> list[Action]:
        """A new parent is pinged at once (unless it was as our incoming one): its Pong
        starts the clock offsets, and its probes count from here."""
        if link.pinged_at != -math.inf:
            return []
        link.pinged_at = now
        return [PingDue(link.id)]

    def _adopt(self, ann: Announcement) -> list[Action]:
        """A verified announcement: ours now; children hear of a new one."""
        if ann == self.announcement:
            return []
        self.announcement = ann
        return [Send(child.id, StreamAnnounce(ann)) for child in self._children]

    def _on_announce(self, link: _Link, message: StreamAnnounce, now: float) -> list[Action]:
        if not self._signed:
            return []
        ann = message.ann
        problem = announcement_problem(ann, self._streamer_id)
        if problem is None and not self._room.is_live_epoch(ann.epoch, self.epoch):
            problem = "a stream announcement of an older stream"
        if problem is not None:
            return self.refuse_parent(problem, now)
        self.epoch = max(self.epoch, ann.epoch)
        self.stream = StreamInfo(ann.width, ann.height, ann.fps, ann.codec)
        return self._adopt(ann)

    def refuse_parent(self, reason: str, now: float) -> list[Action]:
        """Our parent sent something forged (an announcement, media that does not
        verify): leave it as a failed parent (repair as usual) and avoid it a while."""
        parent = self._parent
        if parent is None:
            return []
        self.counters.forged_parents += 1
        actions = self._close(parent, reason, now, Bye(reason=reason[:limits.MAX_REASON_CHARS],
                                                       code=int(ErrorCode.FORGED)))
        if parent.peer_id:
            self._avoid[parent.peer_id] = now + AVOID_FORGER_S
        return actions

    def _on_redirect(self, link: _Link, redirect: Redirect, now: float) -> list[Action]:
        if link is self._parent:
            return self._asked_to_move_on(redirect.candidates, now)
        if link is self._incoming:
            # The new parent cannot carry us after all (its uplink showed it at our
            # join keyframe): give it up (we still have our parent) and, if our parent
            # asked us to move on, try the places this one names next.
            if self._incoming_why == _MOVED_ON:
                self._move_on = list(redirect.candidates)[: limits.MAX_CANDIDATES]
            return self._drop_incoming("the new parent asked us to move on", now)
        if link is not self._joining:
            return []
        self.counters.redirects += 1
        moving = self._moving
        if self._round is not None and not moving:
            # Depth first: a full peer's children are the nearest free slots we know.
            self._round.queue[:0] = list(redirect.candidates)
        if self._moving_on:
            # Asked to move on: a full place's children come next, as in a join (the
            # close below dials the first of them).
            self._move_on[:0] = list(redirect.candidates)
            return self._close(link, "redirected", now, Bye(reason="redirected"))
        actions = self._close(link, "redirected", now, Bye(reason="redirected"))
        if moving:
            # The same for a move, while a level the redirect names is still worth it:
            # the places the room listed as free are often taken by the time we dial.
            actions += self._consider_moving(now, redirect.candidates)
        return actions

    def _on_layer_demand(self, link: _Link, demand: LayerDemand, now: float) -> list[Action]:
        if link.role is not Role.CHILD:
            return []
        if (link.layer, link.auto, link.sound) == (demand.layer, demand.auto, demand.sound):
            return []
        layer_changed = (link.layer, link.auto) != (demand.layer, demand.auto)
        link.layer, link.auto, link.sound = demand.layer, demand.auto, demand.sound
        changed: list[Action] = [ChildLayerChanged(link.id, self.clamp(demand.layer),
                                                   demand.auto)] if layer_changed else []
        return changed + self._update_demand(now)

    def _on_bye(self, link: _Link, bye: Bye, now: float) -> list[Action]:
        if link is self._parent and bye.candidates:
            self._preferred[:0] = list(bye.candidates)
        stream_over = bye.code == ErrorCode.STREAM_ENDED and link is self._parent
        reason = "stream ended" if stream_over else f"{link.name}: {bye.reason}"
        return self._forget(link, reason, now, stream_over=stream_over)

    def _wants_join(self) -> bool:
        return not (self._stopping or self._root or self._parent is not None
                    or self._streamer_id is None)

    def _pump_join(self, now: float) -> list[Action]:
        """Dial the next candidate if we need a parent and are not dialling already."""
        if not self._wants_join() or self._joining is not None:
            return []
        if self._round is None:
            if self._retry_at is not None and now < self._retry_at:
                return []
            self._avoid = {k: until for k, until in self._avoid.items() if until > now}
            queue = self._preferred + self._room.candidates()
            self._preferred = []
            self._round = _Round(queue, set(self._avoid))
        round_ = self._round
        excluded = self._subtree() | {self.peer_id}
        while round_.queue and round_.attempts < MAX_JOIN_ATTEMPTS:
            candidate = round_.queue.pop(0)
            if candidate.id in round_.tried or candidate.id in excluded:
                continue
            round_.tried.add(candidate.id)
            round_.attempts += 1
            self.counters.dials += 1
            link = self._dial_link(candidate, now)
            self._joining = link
            return [Dial(link.id, candidate)]
        # The round is over: wait, then start again with what the room says then.
        self._round = None
        self._retry_at = now + JOIN_RETRY_S[min(self._retry_n, len(JOIN_RETRY_S) - 1)]
        self._retry_n += 1
        return []

    # --- connection reversal -------------------------------------------------------

    def offer(self, orphans: Iterable[Candidate], now: float) -> list[Action]:
        """Offer ourselves as parent to peers that need one, by dialling them.

        For a peer nobody can dial (behind a NAT, the streamer at home for one): it
        cannot be a join candidate, but it can dial out. ``orphans`` are reachable peers
        of the room outside the tree. We dial as many as we have free slots (each
        orphan at most every ``OFFER_AGAIN_S``) and say Hello; one that still needs a
        parent and takes offers from us (``offers_from``) sends a JoinRequest on that
        link, which we answer as if it had dialled us (more acceptances than slots get
        the usual Redirect). Reachable peers never offer: orphans find them as
        candidates.
        """
        if self._room.reachable() or not self.attached or self._stopping:
            return []
        free = self._full_fanout - len(self._children) - len(self._offering)
        if free <= 0:
            return []
        self._offered = {k: t for k, t in self._offered.items() if t > now}
        mine = self._subtree() | {self.peer_id}
        actions: list[Action] = []
        for orphan in orphans:
            if len(actions) >= free:
                break
            if orphan.id in mine or orphan.id in self._offered:
                continue
            self._offered[orphan.id] = now + OFFER_AGAIN_S
            link = self._dial_link(orphan, now)
            link.reverse = True
            self._offering.add(link.id)
            actions.append(Dial(link.id, orphan))
        return actions

    def _take_offer(self, link: _Link, now: float) -> list[Action]:
        """An inbound Hello from a peer whose offers we take: join it if we need to."""
        if link.peer_id not in self.offers_from:
            return []
        withdrawn: list[Action] = []
        joining = self._joining
        if (joining is not None and joining is not link and not self._moving
                and link.peer_id == self.awaited_offer):
            self.awaited_offer = None
            self._joining = None
            del self._links[joining.id]
            withdrawn.append(Close(joining.id, "took an offer we asked for",
                                   Bye(reason="join withdrawn")))
        if (not self._wants_join() or self._joining is not None
                or link.peer_id in self._avoid):
            if self.attached:
                return []  # perhaps an ordinary joiner: its JoinRequest follows
            # Busy dialling elsewhere: say so now, the offer's slot is free at once.
            return self._close(link, "offer declined", now, Bye(reason="busy joining"))
        self._joining = link
        link.deadline = now + self.timing.connect_timeout_s
        host, port = self._room.advertised()
        return [*withdrawn, Send(link.id, JoinRequest(layer=self.demand(), listen_host=host,
                                                      listen_port=port,
                                                      sound=self.sound_demand()))]

    def _asked_to_move_on(self, candidates: Iterable[Candidate], now: float) -> list[Action]:
        """Our parent cannot feed us (a shed): move to one of ``candidates`` while it
        still does (it closes us after a grace)."""
        parent = self._parent
        asked = self._move_on_asked
        if parent is None or (asked is not None and asked[0] == parent.id
                              and now - asked[1] < MOVE_ON_AGAIN_S):
            return []
        self._move_on_asked = (parent.id, now)
        self._move_on = list(candidates)[: limits.MAX_CANDIDATES]
        self._move_on_dials = 0
        return self._next_move_on(now)

    def _next_move_on(self, now: float) -> list[Action]:
        """Dial the next place our parent asked us to move on to (as a move)."""
        parent = self._parent
        if parent is None or self._root or self._stopping or self._joining \
                or self._incoming:
            return []
        excluded = self._subtree() | {self.peer_id, parent.peer_id or ""}
        while self._move_on and self._move_on_dials < MOVE_ON_MAX_DIALS:
            candidate = self._move_on.pop(0)
            if candidate.id in excluded:
                continue
            self._move_on_dials += 1
            self.counters.dials += 1
            link = self._dial_link(candidate, now)
            self._joining = link
            self._moving = True
            self._moving_on = True
            return [Dial(link.id, candidate)]
        self._move_on = []
        return []

    def _consider_moving(self, now: float,
                         candidates: Iterable[Candidate] | None = None) -> list[Action]:
        """Dial a free place at least MOVE_GAIN levels closer to the root, if the room
        lists one (or ``candidates``, a Redirect's, do); we stay attached meanwhile."""
        if self._parent is None or self._root or self._stopping or self._joining \
                or self._incoming:
            return []
        depth = len(self._path)
        self._move_refused = {k: t for k, t in self._move_refused.items() if t > now}
        if len(self._move_refused) >= MOVE_MAX_REFUSED:
            return []
        excluded = self._subtree() | {self.peer_id, self._parent.peer_id or ""}
        best: Candidate | None = None
        for candidate in self._room.candidates() if candidates is None else candidates:
            if candidate.free_slots > 0 and candidate.depth + 1 + MOVE_GAIN <= depth \
                    and candidate.id not in excluded \
                    and candidate.id not in self._move_refused \
                    and (best is None or candidate.depth < best.depth):
                best = candidate
        if best is None:
            return []
        link = self._dial_link(best, now)
        self._joining = link
        self._moving = True
        self.counters.dials += 1
        return [Dial(link.id, best)]

    # --- tree maintenance ----------------------------------------------------------

    def _set_path(self, path: tuple[PathEntry, ...], now: float, *,
                  repairing: bool = False) -> list[Action]:
        """Our parent's path (and whether it says it is repairing) changed: tell our
        children, with the repair notice when we believe it."""
        if any(p.id == self.peer_id for p in path):
            # Our parent now sits below us: a loop. Drop it and re-join.
            self.counters.loops_refused += 1
            if self._parent is None:
                return []
            return self._close(self._parent, "loop detected", now,
                               Bye(reason="loop detected", code=int(ErrorCode.LOOP)))
        deeper = len(path) - len(self._path) if self._path else 0
        self._path = path
        update = PathUpdate(path=self._own_path(), repairing=self._repair_notice(repairing, now))
        actions: list[Action] = [Send(c.id, update) for c in self._children]
        actions += self._report()
        if deeper >= MOVE_GAIN:
            # Moved down a lot (an ancestor re-attached deep): look for a place now.
            actions += self._consider_moving(now)
        return actions

    def _own_path(self) -> tuple[PathEntry, ...]:
        host, port = self._room.advertised()
        return (*self._path, PathEntry(self.peer_id, self.name, host, port))

    def _subtree(self) -> set[str]:
        children = {c.peer_id for c in self._children if c.peer_id}
        return self._room.subtree(self.peer_id, children) | children

    def _child_candidates(self, exclude: str | None = None) -> tuple[Candidate, ...]:
        """Our children that others can dial, as join candidates, starting at a
        different child each time: a join storm redirected by a full peer spreads over
        all its subtrees (breadth first) instead of piling into the first one (a deep
        chain). Children the room lists as undialable are left out (``undialable``);
        one the room does not list (a large room) is offered, as it always was."""
        depth = (self.depth or 0) + 1
        cands = [Candidate(c.peer_id, c.name, c.listen[0], c.listen[1], depth, 1)
                 for c in self._children
                 if c.peer_id and c.listen and c.peer_id != exclude
                 and c.peer_id not in self.undialable]
        if cands:
            self._redirects += 1
            turn = self._redirects % len(cands)
            cands = cands[turn:] + cands[:turn]
        return tuple(cands[: limits.MAX_CANDIDATES])

    def _update_demand(self, now: float) -> list[Action]:
        """Ask the parent for max(own layer, children's layers), and for sound when
        anyone below wants it, when that changes."""
        demand = self.demand()
        wanting = demand != limits.NO_VIDEO
        if wanting and not self._wanting_video and self._video_at is not None:
            # Video is due again: the silence allowance starts now (none came, rightly,
            # while nobody here asked for any).
            self._video_at = max(self._video_at, now)
        self._wanting_video = wanting
        if self._parent is None:
            return []
        # The subtree takes less only when every viewer in it does: a child that asked
        # for a fixed layer gets it whatever our own choice.
        auto = self.auto and all(c.auto for c in self._children)
        sound = self.sound_demand()
        if (demand, auto, sound) == self._demand_sent:
            return []
        self._demand_sent = (demand, auto, sound)
        return [Send(self._parent.id, LayerDemand(layer=demand, auto=auto, sound=sound))]

    def _report(self) -> list[Action]:
        # A peer nobody can dial still reports the slots a reversal or a hole punch can
        # fill (joiners only dial listed peers the tracker found reachable).
        report = Report(depth=self.depth,
                        free_slots=max(0, self._full_fanout - len(self._children)),
                        parent_id=self.parent_id,
                        layer=None if self._root or self._layer == limits.NO_VIDEO
                        else self._layer,
                        streaming=self._root)
        if report == self._reported:
            return []
        self._reported = report
        return [report]

    # --- closing -------------------------------------------------------------------

    def _dial_link(self, candidate: Candidate, now: float) -> _Link:
        """A new outbound link to ``candidate``, due to answer within the connect timeout."""
        link = self._new_link(now, outbound=True)
        link.candidate, link.name = candidate, candidate.name
        link.deadline = now + self.timing.connect_timeout_s
        return link

    def _new_link(self, now: float, *, outbound: bool) -> _Link:
        link = _Link(self._next_id, outbound, opened_at=now, last_heard=now)
        self._next_id += 1
        self._links[link.id] = link
        return link

    def _close(self, link: _Link, reason: str, now: float, bye: Bye | None = None,
               ) -> list[Action]:
        """Close ``link`` ourselves: tell the driver, then forget it."""
        return [Close(link.id, reason, bye),
                *self._forget(link, reason, now, stream_over=False)]

    def _forget(self, link: _Link, reason: str, now: float, *,
                stream_over: bool) -> list[Action]:
        """Drop ``link`` and deal with what it was to us."""
        if self._links.pop(link.id, None) is None:
            return []
        actions: list[Action] = []
        self._offering.discard(link.id)
        if link is self._joining:
            if self._moving and link.candidate is not None:
                # A move refused (Redirect), failed or timed out: the next place soon.
                self._move_refused[link.candidate.id] = now + MOVE_REFUSED_S
                self._next_move_check = min(self._next_move_check, now + MOVE_RETRY_S)
            self._joining = None
            self._moving = False
            self._moving_on = False
            if self._move_on:
                return actions + self._next_move_on(now)
            return actions + self._pump_join(now)
        if link is self._incoming:
            # A move given up (refused media, timed out, gone): we stay; next place soon.
            self._clear_incoming()
            if link.candidate is not None:
                self._move_refused[link.candidate.id] = now + MOVE_REFUSED_S
            self._next_move_check = min(self._next_move_check, now + MOVE_RETRY_S)
            return actions + (self._next_move_on(now) if self._move_on else [])
        if link in self._children:
            self._children.remove(link)
            self._shedding.pop(link.id, None)
            actions.append(ChildDetached(link.id, reason))
            return actions + self._update_demand(now) + self._report()
        if link is not self._parent:
            return actions
        self._parent = None
        self._demand_sent = None
        self._move_on = []  # (the Bye's candidates, if any, are preferred below)
        if self._stopping:
            return actions
        self.counters.parents_lost += 1
        actions.append(ParentDetached(link.id, link.peer_id or "", link.name, reason,
                                      stream_over))
        if link.peer_id:
            # A frozen parent may still be listed (or redirected to) for a while:
            # dialling it would cost a whole connect timeout.
            self._avoid[link.peer_id] = now + AVOID_LOST_PARENT_S
        incoming, accept = self._incoming, self._incoming_accept
        if incoming is not None and accept is not None and not stream_over:
            # A move was under way: its new parent is ours now (its media restarts at
            # its keyframe, which the node may already hold).
            path = self._incoming_path
            self._clear_incoming()
            return actions + self._attach(incoming, replace(accept, path=path), now)
        actions += self._drop_incoming("the stream ended", now)
        if stream_over:
            # The stream is over: pass it down and wait for the next one.
            for child in list(self._children):
                actions += self._close(child, "stream ended", now, _stream_ended())
            self._path = ()
            self._preferred = []
        else:
            if self._path:
                # We are alive and repairing: our children must not fail us for the
                # silence meanwhile (our re-attach's PathUpdate ends the notice).
                notice = PathUpdate(path=self._own_path(), repairing=True)
                actions += [Send(child.id, notice) for child in self._children]
            self._repair_grace_until = -math.inf
            grandparent = self._path[-2] if len(self._path) >= 2 else None
            if grandparent is not None and grandparent.host and grandparent.port:
                self._preferred.append(Candidate(grandparent.id, grandparent.name,
                                                 grandparent.host, grandparent.port))
        # A fresh round at once: the preferred candidates first.
        self._round = None
        self._retry_at = None
        self._retry_n = 0
        return actions + self._report() + self._pump_join(now)


def _stream_ended() -> Bye:
    return Bye(reason="stream ended", code=int(ErrorCode.STREAM_ENDED))


def subtree_of(peer_id: str, children: set[str],
               parents: Iterable[tuple[str, str | None]]) -> set[str]:
    """Descendants of ``peer_id`` (and of ``children``) from (peer, parent) pairs.

    A helper for room views built on a full peer list (the tracker's or the LAN's).
    """
    children_of: dict[str, list[str]] = {}
    for peer, parent in parents:
        if parent:
            children_of.setdefault(parent, []).append(peer)
    found = set(children)
    stack = [peer_id, *children]
    while stack:
        for child in children_of.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found
