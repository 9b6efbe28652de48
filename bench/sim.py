"""A room of thousands of peers in virtual time: the real TrackerState and TreeStates.

    python -m bench.sim --peers 10000 --churn 5 --seconds 90 --seed 1

Every peer is a real ``TreeState`` (peer/node/tree/state.py) on a ``SimNet`` (latency
per access link, TCP-like loss as retransmission delay, EOF on death, silence when
frozen); the tracker is the real ``TrackerState`` (tracker/state.py), reached over its
own simulated connections: Register, a Heartbeat every second with the position the
tree reports, StreamClaim for the root; its PeerLists and StreamerChanged feed each
peer's room view the way ``TrackerDirectory`` does.

Peers join evenly over ``--join-seconds``. Churn removes ``--churn`` percent of the
viewers per minute (a Poisson process) and adds as many newcomers: half leave
gracefully (Bye with hints), 40 % are killed (EOF), 10 % freeze (their neighbours
must time them out; the process is killed 15 s later). Upload capacity sets each
peer's fan-out: ``floor(upload / bitrate)``, at most ``--max-children``.

Prints one JSON object (and writes it to bench/results/sim_<peers>.json):
depth (max and mean at the end, the deepest peer of each one-second sample in steady
state: worst, median and how often above the bound ceil(log_k N) + 2), join time
p50/p95 (start to first Accept), repair time p50/p95/max (a parent's departure to
its orphan's re-attach), tracker messages and bytes per peer per second (both
directions), tree control bytes per peer per second (pings included), fraction
receiving at steady state (the mean over one-second samples after the join window of
peers whose chain of parents reaches the root through live links), and the wall time.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peer.node.directory import order_candidates
from peer.node.tree import actions as act
from peer.node.tree.simnet import Peer, SimNet
from peer.node.tree.state import StreamInfo, TreeTiming, subtree_of
from protocol import (
    Bye,
    Candidate,
    Heartbeat,
    Message,
    PeerList,
    Register,
    StreamClaim,
    StreamerChanged,
    StreamGranted,
    encode,
)
from tracker.config import TrackerConfig
from tracker.state import TrackerState

ROOM = "lobby"
RESULTS = Path(__file__).resolve().parent / "results"
HEARTBEAT_S = 1.0  # Timing.tracker_heartbeat_s
TRACKER_ACCESS_S = 0.005  # the tracker sits in a data centre
FREEZE_KILL_S = 15.0  # a frozen process is killed (by its user) after this long
STEADY_AFTER_JOIN_S = 5.0  # steady state starts this long after the last planned join


@dataclass(eq=False, slots=True)
class Member:
    """A simulated peer's side of the tracker: its connection and what it last heard."""

    peer: Peer
    conn: int
    room_list: PeerList | None = None
    cached: list[Candidate] | None = None
    streamer: tuple[str, int] | None = None
    position: act.Report | None = None
    orphaned_at: float | None = None  # our parent departed then
    tracker_open: bool = True


class TrackerRoomView:
    """``RoomView`` over the PeerLists a member received (as TrackerDirectory does)."""

    def __init__(self, sim: Sim, member: list[Member]) -> None:
        self._sim = sim
        self._member = member

    def candidates(self) -> list[Candidate]:
        member = self._member[0]
        if member.cached is None:
            peers = member.room_list.peers if member.room_list is not None else ()
            found = [c for p in peers if p.id != member.peer.id
                     if (c := p.candidate()) is not None]
            member.cached = found
        shuffled = order_candidates(member.cached)  # shuffles ties, like the node
        return shuffled

    def subtree(self, peer_id: str, children: set[str]) -> set[str]:
        member = self._member[0]
        peers = member.room_list.peers if member.room_list is not None else ()
        return subtree_of(peer_id, children, ((p.id, p.parent_id) for p in peers))

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        return epoch >= newest

    def reachable(self) -> bool:
        return True

    def advertised(self) -> tuple[str | None, int | None]:
        peer = self._member[0].peer
        return peer.host, peer.port


@dataclass
class Counters:
    tracker_messages: int = 0
    tracker_bytes: int = 0
    peer_seconds: float = 0.0
    # The same over the steady window only (after the joins).
    steady_tracker_messages: int = 0
    steady_tracker_bytes: int = 0
    steady_control_bytes: int = 0
    steady_peer_seconds: float = 0.0
    tracker_bytes_by_kind: dict[str, int] = field(default_factory=dict)
    joins: list[float] = field(default_factory=list)
    repairs: list[float] = field(default_factory=list)
    receiving: list[float] = field(default_factory=list)
    depth_max: list[int] = field(default_factory=list)  # per steady 1-s sample
    departures: int = 0


class Sim:
    """The room: a SimNet of TreeStates plus the TrackerState and the churn."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.timing = TreeTiming()
        self.net = SimNet(timing=self.timing, loss=args.loss, seed=args.seed,
                          on_report=self._on_report)
        most = min(100_000, 10 * args.peers + 100)  # churn adds peers; no limit should bite
        self.tracker = TrackerState(TrackerConfig(
            max_connections=most, max_peers_per_room=most), rng=random.Random(args.seed))
        self.members: dict[str, Member] = {}
        # The viewers churn may pick (alive, not frozen, not the root): a list with an
        # index for O(1) pick and removal (a scan per departure made the simulator's
        # own work grow with the square of the room).
        self.viewers: list[Member] = []
        self._viewer_at: dict[str, int] = {}
        self.by_conn: dict[int, Member] = {}
        self.counters = Counters()
        self._next = 0
        self._sizes: dict[int, tuple[Message, int]] = {}
        self._hb_sizes: dict[tuple[object, ...], int] = {}
        self.root: Peer | None = None
        self.tracker_armed: float | None = None

    # --- peers ---------------------------------------------------------------------

    def _fanout(self) -> int:
        a = self.args
        upload = self.rng.uniform(a.upload_mbps * (1 - a.upload_spread),
                                  a.upload_mbps * (1 + a.upload_spread))
        return max(0, min(a.max_children, int(upload // a.bitrate_mbps)))

    def start_peer(self, *, root: bool = False) -> Member:
        peer_id = f"p{self._next}"
        self._next += 1
        holder: list[Member] = []
        fanout = self.args.root_children if root else self._fanout()
        peer = self.net.add_peer(peer_id, fanout=fanout,
                                 room=lambda me: TrackerRoomView(self, holder))
        peer.access_s = self.rng.uniform(self.args.latency_ms[0], self.args.latency_ms[1]) / 1000
        member = Member(peer, conn=self._next)
        holder.append(member)
        self.members[peer_id] = member
        self.by_conn[member.conn] = member
        if not root:
            self._viewer_at[peer_id] = len(self.viewers)
            self.viewers.append(member)
        self._tracker_in(member, None)  # connect
        self._to_tracker(member, Register(peer_id=peer_id, name=peer_id, room=ROOM,
                                          host=peer.host, port=peer.port))
        self.net.at(self.net.now + HEARTBEAT_S * self.rng.random(),
                    lambda: self._heartbeat(member))
        if root:
            self._to_tracker(member, StreamClaim(sent_at=self.net.now))
        return member

    def _heartbeat(self, member: Member) -> None:
        peer = member.peer
        if not peer.alive or not member.tracker_open:
            return
        if not peer.frozen:
            pos = member.position
            self._to_tracker(member, Heartbeat(
                depth=pos.depth if pos else None, free_slots=pos.free_slots if pos else 0,
                parent_id=pos.parent_id if pos else None, layer=pos.layer if pos else None,
                sent_at=self.net.now))
        self.net.at(self.net.now + HEARTBEAT_S, lambda: self._heartbeat(member))

    def _on_report(self, peer: Peer, report: act.Report) -> None:
        member = self.members[peer.id]
        member.position = report

    # --- the tracker link ----------------------------------------------------------

    def _size(self, message: Message) -> int:
        """Wire bytes of ``message`` (encoded for real, cached where that is exact)."""
        if isinstance(message, Heartbeat):
            # Most of the traffic: its size depends on the lengths of its fields only
            # (sent_at is always a float of the same magnitude here).
            hb_key = (message.depth, message.free_slots, len(message.parent_id or ""),
                      message.parent_id is None, message.layer)
            size = self._hb_sizes.get(hb_key)
            if size is None:
                size = self._hb_sizes[hb_key] = len(encode(message, check_fields=False))
            return size
        # Pushes share one object among many receivers: encode it once.
        key = id(message)
        hit = self._sizes.get(key)
        if hit is not None and hit[0] is message:
            return hit[1]
        if len(self._sizes) > 50_000:
            self._sizes.clear()
        size = len(encode(message, check_fields=False))
        self._sizes[key] = (message, size)
        return size

    def _count(self, message: Message) -> None:
        c = self.counters
        size = self._size(message)
        c.tracker_messages += 1
        c.tracker_bytes += size
        kind = type(message).__name__
        c.tracker_bytes_by_kind[kind] = c.tracker_bytes_by_kind.get(kind, 0) + size

    def _to_tracker(self, member: Member, message: Message) -> None:
        self._count(message)
        delay = member.peer.access_s + TRACKER_ACCESS_S  # type: ignore[operator]
        self.net.at(self.net.now + delay, lambda: self._tracker_in(member, message))

    def _tracker_in(self, member: Member, message: Message | None) -> None:
        now = self.net.now
        if message is None:
            out = self.tracker.connect(member.conn, member.peer.host, now)
        else:
            out = self.tracker.receive(member.conn, message, now)
        for check in self.tracker.take_checks():
            out += self.tracker.check_done(check, True, now)
        self._tracker_out(out)

    def _tracker_gone(self, member: Member) -> None:
        self._tracker_out(self.tracker.disconnect(member.conn, self.net.now))

    def _tracker_out(self, out: list[tuple[int, Message]]) -> None:
        for conn, message in out:
            member = self.by_conn.get(conn)
            if member is None:
                continue
            self._count(message)
            delay = member.peer.access_s + TRACKER_ACCESS_S  # type: ignore[operator]
            self.net.at(self.net.now + delay,
                        lambda m=member, msg=message: self._member_hears(m, msg))
        self._arm_tracker()

    def _arm_tracker(self) -> None:
        due = self.tracker.get_timer()
        if due is None:
            return
        if self.tracker_armed is not None and self.tracker_armed <= due:
            return
        self.tracker_armed = due
        self.net.at(max(due, self.net.now), lambda: self._tracker_timer(due))

    def _tracker_timer(self, due: float) -> None:
        # Only the latest arming runs the tracker: an earlier one superseded by a
        # sooner due would otherwise fire too and re-arm, and such stale wake-ups
        # multiplied with every re-arm (the cost per simulated second grew with time
        # and room size: 10,000 peers did not finish).
        if self.tracker_armed != due:
            return
        self.tracker_armed = None
        self._tracker_out(self.tracker.handle_timer(self.net.now))

    def _member_hears(self, member: Member, message: Message) -> None:
        peer = member.peer
        if not peer.healthy or not member.tracker_open:
            return
        now = self.net.now
        if isinstance(message, PeerList):
            member.room_list = message
            member.cached = None
            if message.streamer_id is not None:
                self._streamer(member, message.streamer_id, message.epoch)
            self.net.apply(peer, peer.tree.directory_changed(now))
        elif isinstance(message, StreamerChanged):
            if message.streamer_id is not None:
                self._streamer(member, message.streamer_id, message.epoch)
        elif isinstance(message, StreamGranted):
            if peer is self.root and not peer.tree.is_root:
                self.net.apply(peer, peer.tree.become_root(
                    message.epoch, StreamInfo(1280, 720, 30.0), now))
                member.streamer = (peer.id, message.epoch)
        elif isinstance(message, Bye):
            member.tracker_open = False

    def _streamer(self, member: Member, streamer_id: str, epoch: int) -> None:
        if member.streamer == (streamer_id, epoch) or member.peer is self.root:
            return
        member.streamer = (streamer_id, epoch)
        peer = member.peer
        self.net.apply(peer, peer.tree.set_streamer(streamer_id, epoch, self.net.now))

    # --- churn ---------------------------------------------------------------------

    def depart(self) -> None:
        if not self.viewers:
            return
        member = self.rng.choice(self.viewers)
        self._drop_viewer(member)
        peer = member.peer
        self.counters.departures += 1
        for child_id in self._children_of(peer):
            orphan = self.members[child_id]
            if orphan.orphaned_at is None:
                orphan.orphaned_at = self.net.now
        roll = self.rng.random()
        if roll < 0.5:
            self.net.leave(peer)
            self._to_tracker(member, Bye(reason="leaving"))
            self.net.at(self.net.now + 0.05, lambda: self._tracker_gone(member))
        elif roll < 0.9:
            self.net.kill(peer)
            self.net.at(self.net.now + (peer.access_s or 0) + TRACKER_ACCESS_S,
                        lambda: self._tracker_gone(member))
        else:
            self.net.freeze(peer)

            def kill_later() -> None:
                self.net.kill(peer)
                self._tracker_gone(member)
            self.net.at(self.net.now + FREEZE_KILL_S, kill_later)
        self.start_peer()

    def _drop_viewer(self, member: Member) -> None:
        at = self._viewer_at.pop(member.peer.id)
        last = self.viewers.pop()
        if last is not member:
            self.viewers[at] = last
            self._viewer_at[last.peer.id] = at

    def _children_of(self, peer: Peer) -> list[str]:
        found = []
        for link in peer.tree.children:
            end = peer.ends.get(link)
            if end is not None and end.other is not None:
                found.append(end.other.peer.id)
        return found

    # --- running and measuring -----------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        net = self.net
        # The node's candidate order shuffles ties with the module's generator: seeded,
        # a run is repeatable.
        random.seed(a.seed)
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        root_member = self.start_peer(root=True)
        self.root = root_member.peer
        join_s = min(a.join_seconds, a.seconds)
        for i in range(a.peers - 1):
            net.at(0.5 + join_s * i / max(1, a.peers - 1), self.start_peer)
        # Churn: a Poisson process over the viewers present.
        rate_per_peer_s = a.churn / 100.0 / 60.0

        def churn() -> None:
            rate = rate_per_peer_s * max(len(self.viewers), 1)
            if rate <= 0:
                return
            self.depart()
            net.at(net.now + self.rng.expovariate(rate), churn)
        if rate_per_peer_s > 0:
            net.at(1.0 + self.rng.expovariate(rate_per_peer_s * max(1, a.peers // 10)), churn)
        steady_from = 0.5 + join_s + STEADY_AFTER_JOIN_S
        seen_join: set[str] = set()
        second = 1.0
        marks: tuple[int, int, int] | None = None
        while second <= a.seconds:
            if marks is None and second > steady_from:
                marks = (self.counters.tracker_messages, self.counters.tracker_bytes,
                         sum(m.peer.control_bytes for m in self.members.values()))
            net.run_until(second)
            alive = [m for m in self.members.values() if m.peer.alive]
            self.counters.peer_seconds += len(alive)
            if marks is not None:
                self.counters.steady_peer_seconds += len(alive)
            for member in self.members.values():
                peer = member.peer
                if peer.joined_at is not None and peer.id not in seen_join:
                    seen_join.add(peer.id)
                    self.counters.joins.append(peer.joined_at - peer.started_at)
                orphaned = member.orphaned_at
                if orphaned is not None and peer.attached_at is not None \
                        and peer.attached_at > orphaned:
                    self.counters.repairs.append(peer.attached_at - orphaned)
                    member.orphaned_at = None
                elif orphaned is not None and not peer.alive:
                    member.orphaned_at = None  # left before it re-attached
            if second >= steady_from:
                viewers = {m.peer.id for m in alive if m.peer.healthy
                           and m.peer is not self.root}
                if viewers:
                    receiving = net.receiving(self.root) & viewers
                    self.counters.receiving.append(len(receiving) / len(viewers))
                self.counters.depth_max.append(max(
                    (m.peer.tree.depth or 0 for m in alive if m.peer.healthy), default=0))
            second += 1.0
        if marks is not None:
            c = self.counters
            c.steady_tracker_messages = c.tracker_messages - marks[0]
            c.steady_tracker_bytes = c.tracker_bytes - marks[1]
            c.steady_control_bytes = sum(m.peer.control_bytes
                                         for m in self.members.values()) - marks[2]
        wall = time.perf_counter() - wall0
        return self._result(wall, time.process_time() - cpu0)

    def _result(self, wall: float, cpu: float) -> dict[str, Any]:
        a = self.args
        c = self.counters
        attached = [m.peer for m in self.members.values()
                    if m.peer.healthy and m.peer.tree.attached and m.peer is not self.root]
        depths = [p.tree.depth or 0 for p in attached]
        fanouts = [len(p.tree.children) for p in attached if p.tree.children]
        k = a.max_children if a.upload_spread == 0 else max(2, round(statistics.median(
            [p.tree.fanout for p in attached if p.tree.fanout > 0] or [2])))
        k = min(k, int(a.upload_mbps // a.bitrate_mbps)) if a.upload_spread == 0 else k
        n = len(attached) + 1
        bound = math.ceil(math.log(max(n, 2), max(k, 2))) + 2
        control = sum(m.peer.control_bytes for m in self.members.values())
        ps = max(c.peer_seconds, 1.0)
        sps = max(c.steady_peer_seconds, 1.0)
        return {
            "peers": a.peers, "churn_pct_per_min": a.churn, "seconds": a.seconds,
            "seed": a.seed, "join_seconds": min(a.join_seconds, a.seconds),
            "loss": a.loss, "latency_ms": list(a.latency_ms),
            "fanout_k": k, "mean_children_of_relays": _r(statistics.fmean(fanouts)
                                                         if fanouts else 0.0),
            "depth_max": max(depths, default=0),
            # The deepest peer of any one-second sample in steady state (a repair may
            # put a subtree deep for the few seconds until its peers move up).
            "depth_max_steady_worst": max(c.depth_max, default=None),
            "depth_max_steady_p50": _pct([float(d) for d in c.depth_max], 50),
            "depth_over_bound_fraction": _r(sum(d > bound for d in c.depth_max)
                                            / len(c.depth_max), 3) if c.depth_max else None,
            "depth_mean": _r(statistics.fmean(depths) if depths else 0.0),
            "depth_bound": bound,
            "join_s_p50": _pct(c.joins, 50), "join_s_p95": _pct(c.joins, 95),
            "repair_s_p50": _pct(c.repairs, 50), "repair_s_p95": _pct(c.repairs, 95),
            "repair_s_max": _r(max(c.repairs, default=0.0)), "repairs": len(c.repairs),
            "departures": c.departures,
            "detection_timeout_s": self.timing.link_timeout_s + self.timing.ping_interval_s,
            "rtt_ms_max": 2 * (2 * a.latency_ms[1]),
            "tracker_msgs_per_peer_s": _r(c.tracker_messages / ps, 3),
            "tracker_bytes_per_peer_s": _r(c.tracker_bytes / ps, 1),
            "control_bytes_per_peer_s": _r(control / ps, 1),
            "steady_tracker_msgs_per_peer_s": _r(c.steady_tracker_messages / sps, 3),
            "steady_tracker_bytes_per_peer_s": _r(c.steady_tracker_bytes / sps, 1),
            "steady_control_bytes_per_peer_s": _r(c.steady_control_bytes / sps, 1),
            "tracker_bytes_by_kind": c.tracker_bytes_by_kind,
            "receiving_fraction_steady": _r(statistics.fmean(c.receiving), 5)
            if c.receiving else None,
            "receiving_fraction_min": _r(min(c.receiving), 5) if c.receiving else None,
            "wall_s": _r(wall, 1),
            # The machine is shared: CPU time is what the simulation itself cost.
            "cpu_s": _r(cpu, 1),
            "loadavg_1min_at_end": _r(os.getloadavg()[0], 1),
        }


def _r(value: float, digits: int = 3) -> float:
    return round(value, digits)


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return _r(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--churn", type=float, default=5.0, help="percent of viewers per minute")
    parser.add_argument("--seconds", type=float, default=90.0, help="virtual time to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--join-seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, nargs=2, default=(5.0, 25.0),
                        metavar=("MIN", "MAX"), help="one-way access latency per peer")
    parser.add_argument("--loss", type=float, default=0.001)
    parser.add_argument("--bitrate-mbps", type=float, default=2.0)
    parser.add_argument("--upload-mbps", type=float, default=6.0)
    parser.add_argument("--upload-spread", type=float, default=0.0,
                        help="uploads vary +- this fraction around --upload-mbps")
    parser.add_argument("--max-children", type=int, default=8)
    parser.add_argument("--root-children", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.peers < 2 or args.seconds <= 0:
        parser.error("need at least 2 peers and a positive duration")
    # Millions of small, mostly long-lived objects: the cyclic collector's default
    # thresholds made it rescan the whole room thousands of times (15-20 % of the run
    # at 4,000 peers, more the larger the room). Collect rarely instead.
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        result = Sim(args).run()
    finally:
        gc.set_threshold(*thresholds)
    print(json.dumps(result))
    out = args.out or RESULTS / f"sim_{args.peers}.json"
    os.makedirs(out.parent, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
