"""A headless peer for benchmarks: the real Node, plus per-frame timing lines.

Same command line as ``treecast-peer`` (``python -m peer.node.cli``) and the same event
lines, plus once a second a ``probe`` line the node itself does not emit::

    {"event": "probe", "t": ..., "recv": [[seq, arrival, captured_at, root_offset], ...],
     "dec": [[seq, decoded_at, captured_at], ...]}

* ``recv``: every video frame from the parent, stamped when the node's ``VideoIntake.frame``
  starts handling it (the moment it also stamps for its own latency statistics, before
  forwarding). ``root_offset`` is the node's estimate of (root clock - our clock), or
  None while unknown: ``arrival + root_offset - captured_at`` is the latency the node
  reports, ``arrival - captured_at`` the true one when streamer and viewer share one
  clock (loopback, network namespaces).
* ``dec`` (with ``--probe-decode``): frames as the node's display path hands them over,
  decoded (and resized to our layer): capture to decoded picture, "glass to glass"
  minus the screen. The node emits no event for this; a GUI gets the same callback.

``--cprofile PATH`` writes a cProfile of the node's thread to PATH at exit.

``--trace-tree`` adds a ``trace`` line for each tree decision that changes a link: a
dial (``dial``: whom), a close (``close``: whom, why), a parent attached (``attach``:
whom, ``handed_over``), a Redirect sent on an open link (``redirect``: a shed asking a
child to move on), and each change of the move's incoming parent (``incoming``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import sys
import threading
import time
from typing import Any

from peer.node.cli import (
    EventWriter,
    build_parser,
    config_from_args,
    stop_on_signals,
    wait_until_done,
)
from peer.node.errors import ExitCode, NodeError, exit_code
from peer.node.events import DecodedFrame
from peer.node.intake import VideoIntake
from peer.node.node import Node
from peer.node.tree import actions as act
from peer.node.tree_driver import TreeDriver
from protocol import Redirect, VideoFrame


class Probe:
    """Collects frame timings from the node's thread and its decode worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.recv: list[list[Any]] = []
        self.dec: list[list[Any]] = []

    def on_frame(self, frame: DecodedFrame) -> None:  # decode worker thread
        done = time.time()
        with self._lock:
            self.dec.append([frame.seq, done, frame.captured_at])

    def hook(self, node: Node) -> None:
        """Stamp every frame as the node's video intake receives it (before relaying).

        The class is wrapped (the node made its intake already): one node per probe
        process.
        """
        original = VideoIntake.frame

        def frame(intake: VideoIntake, link_id: int, message: VideoFrame) -> None:
            arrival = time.time()
            if link_id == node.tree.parent:
                offset = node.links.root_offset()
                with self._lock:
                    self.recv.append([message.seq, arrival, message.captured_at, offset])
            original(intake, link_id, message)

        VideoIntake.frame = frame  # type: ignore[method-assign]

    def trace_tree(self, node: Node, out: Any) -> None:
        """Write a ``trace`` line for each link-changing tree action (class-wrapped
        like ``hook``: one node per probe process)."""
        original = TreeDriver.apply
        tree = node.tree
        seen: list[int | None] = [None]

        def write(what: str, link: int, **extra: Any) -> None:
            peer = node.links.get(link)
            line = {"event": "trace", "t": time.time(), "what": what,
                    "peer": getattr(peer, "name", "?"), **extra}
            with contextlib.suppress(ValueError, OSError):
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                out.flush()

        def apply(driver: TreeDriver, actions: list[act.Action]) -> None:
            for a in actions:
                if isinstance(a, act.Dial):
                    write("dial", a.link, to=a.candidate.name)
                elif isinstance(a, act.Close):
                    write("close", a.link, reason=a.reason)
                elif isinstance(a, act.ParentAttached):
                    write("attach", a.link, handed_over=a.handed_over)
                elif isinstance(a, act.Send) and isinstance(a.message, Redirect) \
                        and a.link in tree.children:
                    write("redirect", a.link, to=[c.name for c in a.message.candidates])
            original(driver, actions)
            if tree.incoming != seen[0]:
                seen[0] = tree.incoming
                write("incoming", tree.incoming or 0)

        TreeDriver.apply = apply  # type: ignore[method-assign,assignment]

    def flush(self, out: Any) -> None:
        with self._lock:
            recv, self.recv = self.recv, []
            dec, self.dec = self.dec, []
        if not recv and not dec:
            return
        line = {"event": "probe", "t": time.time(), "recv": recv, "dec": dec}
        with contextlib.suppress(ValueError, OSError):
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            out.flush()


async def run(args: argparse.Namespace, out: Any) -> int:
    config = config_from_args(args)
    writer = EventWriter(out)
    probe = Probe()
    node = Node(config, writer, probe.on_frame if args.probe_decode else None)
    probe.hook(node)
    if args.trace_tree:
        probe.trace_tree(node, out)
    stop = stop_on_signals()
    try:
        await node.start()
    except NodeError as exc:
        return exit_code(exc)

    async def flush_loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            probe.flush(out)

    flusher = asyncio.ensure_future(flush_loop())
    await wait_until_done(node, stop, args.duration)
    flusher.cancel()
    probe.flush(out)
    await node.stop("quit")
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument("--probe-decode", action="store_true",
                        help="decode every frame (as a display would) and report when done")
    parser.add_argument("--cprofile", metavar="PATH", help="profile the node thread")
    parser.add_argument("--trace-tree", action="store_true",
                        help="a trace line for each dial, close, attach, shed request")
    args = parser.parse_args(argv)
    if not args.name or args.tracker is None:
        parser.error("--name and --tracker are required")
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler is not None:
        profiler.enable()
    out = sys.stdout if args.events in (None, "-") else open(args.events, "a")  # noqa: SIM115
    try:
        return asyncio.run(run(args, out))
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        if out is not sys.stdout:
            out.close()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)


if __name__ == "__main__":
    sys.exit(main())
