"""The event loop choice (peer/node/loops.py) and what the node needs of either loop.

uvloop runs wherever it is installed; ``TREECAST_EVENT_LOOP=asyncio`` (or no uvloop)
gives asyncio's own loop. Both must accept TLS links (the listener admits a bare
socket, then handshakes), refuse over-cap connections with a plain Bye, and keep the
clock contract the tree driver relies on. A real viewer chain streams on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from peer.node import loops
from peer.node.config import NodeConfig
from peer.node.connections import Connections
from peer.node.link import PeerLink, open_link
from peer.node.runner import NodeThread
from protocol import Bye, ErrorCode, FrameDecoder
from protocol.identity import Identity
from tests.support.procs import session, start_bare_chain, wait_for

try:
    import uvloop
except ImportError:  # not installed (or Windows): only the asyncio cases run
    uvloop = None  # type: ignore[assignment]

needs_uvloop = pytest.mark.skipif(uvloop is None, reason="uvloop is not installed here")

# asyncio's loop, and uvloop as the peer runs it.
FACTORIES = [pytest.param(asyncio.new_event_loop, id="asyncio"),
             pytest.param(loops.uvloop_factory(), id="uvloop", marks=needs_uvloop)]
WAIT_S = 10.0


def _run(factory: Callable[[], asyncio.AbstractEventLoop],
         main: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


# --- the choice --------------------------------------------------------------------


@needs_uvloop
def test_uvloop_is_the_default_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loops.ENV_VAR, raising=False)
    loop = loops.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loops.loop_name(loop) == "uvloop"
    finally:
        loop.close()

    async def running() -> str:
        return loops.loop_name(asyncio.get_running_loop())

    assert loops.run(running()) == "uvloop"


def test_the_environment_can_ask_for_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.ENV_VAR, "asyncio")
    assert loops.loop_factory() is asyncio.new_event_loop

    async def running() -> str:
        return loops.loop_name(asyncio.get_running_loop())

    assert loops.run(running()) == "asyncio"


def test_without_uvloop_asyncios_loop_runs_and_a_request_for_it_is_answered(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    monkeypatch.delenv(loops.ENV_VAR, raising=False)
    assert loops.loop_factory() is asyncio.new_event_loop
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(loops.ENV_VAR, "uvloop")
    assert loops.loop_factory() is asyncio.new_event_loop
    assert "uvloop is not available" in capsys.readouterr().err


def test_windows_never_asks_for_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops.sys, "platform", "win32")
    monkeypatch.delenv(loops.ENV_VAR, raising=False)
    assert loops.loop_factory() is asyncio.new_event_loop


@needs_uvloop
def test_the_apps_node_thread_runs_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loops.ENV_VAR, raising=False)

    async def where() -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        # A thread-safe hand-back from another thread, as the Qt side does it.
        done = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe,
                         args=(done.set_result, True)).start()
        return loops.loop_name(loop), await done

    with NodeThread() as runner:
        assert runner.submit(where()).result(WAIT_S) == ("uvloop", True)
    assert runner.loop.is_closed()


def test_run_finishes_like_asyncio_run() -> None:
    left: list[asyncio.Task[None]] = []

    async def main() -> int:
        left.append(asyncio.create_task(asyncio.sleep(3600)))
        return 7

    assert loops.run(main()) == 7
    assert left[0].cancelled()  # what was still running was cancelled, not leaked


# --- the clock contract (peer/node/tree_driver.py arms call_at with monotonic times) --


@pytest.mark.parametrize("factory", FACTORIES)
def test_loop_time_is_the_monotonic_clock_and_timers_never_fire_early(
        factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        skew = max(abs(loop.time() - time.monotonic()) for _ in range(200))
        earliest = 0.0
        for i in range(100):
            due = time.monotonic() + 0.001 + (i % 7) * 0.0007  # odd fractions of a ms
            fired: asyncio.Future[float] = loop.create_future()
            loop.call_at(due, lambda f=fired: f.set_result(time.monotonic()))
            earliest = max(earliest, due - await fired)
        return skew, earliest

    skew, earliest = _run(factory, main())
    # uvloop's clock is libuv's millisecond uv_now: behind by less than a millisecond.
    assert skew < 0.002, skew
    # Never before its due time by time.monotonic() (uvloop's own call_at rounds to the
    # nearest millisecond and can be half of one early: the tree's timer would spin).
    assert earliest <= 0.0, earliest


# --- the listener on either loop -----------------------------------------------------


def _connections(identity: Identity, inbound: list[PeerLink]) -> Connections:
    config = NodeConfig(name="listener", listen_host="127.0.0.1", max_children=1)

    async def on_message(link: PeerLink, message: object) -> None:
        return None

    return Connections(config, identity, on_message=on_message,
                       on_close=lambda link, reason: None,
                       on_inbound=lambda link, address: inbound.append(link))


@pytest.mark.parametrize("factory", FACTORIES)
def test_a_tls_link_is_accepted_on_either_loop(
        factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    listener_id, dialler_id = Identity.generate(), Identity.generate()

    async def main() -> None:
        inbound: list[PeerLink] = []
        connections = _connections(listener_id, inbound)
        host, port = await connections.listen()

        async def on_message(link: PeerLink, message: object) -> None:
            return None

        # The dialler's ClientHello goes out at once: it must not be lost to a
        # transport that read it before TLS took over (uvloop reads at once).
        link = await open_link(host, port, timeout=WAIT_S, on_message=on_message,
                               on_close=lambda link, reason: None, identity=dialler_id,
                               expected_id=listener_id.peer_id)
        async with asyncio.timeout(WAIT_S):
            while not inbound:
                await asyncio.sleep(0.01)
        assert inbound[0].admitted_from == "127.0.0.1"
        link.close("done")
        inbound[0].close("done")
        await connections.close()

    _run(factory, main())


@pytest.mark.parametrize("factory", FACTORIES)
def test_a_connection_over_the_cap_hears_a_plain_bye_and_costs_no_handshake(
        factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> None:
        inbound: list[PeerLink] = []
        connections = _connections(Identity.generate(), inbound)
        host, port = await connections.listen()
        loop = asyncio.get_running_loop()
        cap = connections._caps.max_per_address
        held: list[socket.socket] = []
        try:
            for _ in range(cap):  # silent connections: each holds a slot (handshaking)
                sock = socket.create_connection((host, port))
                held.append(sock)
            async with asyncio.timeout(WAIT_S):
                while connections._caps.total < cap:
                    await asyncio.sleep(0.01)
            extra = socket.create_connection((host, port))
            held.append(extra)
            extra.setblocking(False)
            decoder = FrameDecoder()
            async with asyncio.timeout(WAIT_S):
                while (message := decoder.next_message()) is None:
                    data = await loop.sock_recv(extra, 4096)
                    assert data, "closed without a Bye"
                    decoder.receive_data(data)
            assert isinstance(message, Bye)
            assert message.code == int(ErrorCode.TOO_MANY_CONNECTIONS)
            assert connections._caps.total == cap  # the refused one holds nothing
        finally:
            for sock in held:
                sock.close()
            await connections.close()
        assert connections._caps.total == 0  # handshakes cut short by close released theirs
        assert not inbound

    _run(factory, main())


# --- a real viewer chain on uvloop ---------------------------------------------------


@needs_uvloop
@pytest.mark.slow
def test_a_relay_and_a_leaf_stream_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loops.ENV_VAR, raising=False)  # the peers' default
    with session() as s:
        # Headless viewers as the scale benchmark runs them; the leaf joins under the
        # relay, so both accept a TLS link (root and relay) and both dial one.
        root, relay, leaf = start_bare_chain(s)
        for peer in (root, relay, leaf):
            assert (peer.last("ready") or {}).get("loop") == "uvloop", peer.name
        since = time.time()

        def fps_since(name: str) -> list[float]:
            return [e.get("fps", 0) for e in s.peers[name].all("stats") if e["t"] > since]

        assert wait_for(lambda: all(len(fps_since(n)) >= 3 for n in ("relay", "leaf")),
                        30), (relay.events[-3:], leaf.events[-3:])
        for name in ("relay", "leaf"):
            assert all(fps > 0 for fps in fps_since(name)), (name, fps_since(name))
        # SIGTERM ends each one cleanly (the loop's signal handlers).
        for name in ("leaf", "relay", "root"):
            s.kill(name, 15)
            assert s.peers[name].proc.wait(30) == 0, name
    for peer in (root, relay, leaf):
        assert peer.proc.stderr is not None
        errors = peer.proc.stderr.read()
        assert "Traceback" not in errors, (peer.name, errors)
