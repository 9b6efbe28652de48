"""Start-screen helpers in the bridge: LAN sessions (off-thread browser) and room probe."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from peer.gui.bridge import LanSessionInfo, LanSessions, RoomProbe, RoomStatus
from peer.gui.bridge import rooms as bridge_mod

T = 10000


@dataclass(frozen=True)
class _Session:  # shaped like peer.lan.browser.LanSession
    room: str
    streamer: str | None
    peers: int
    tracker: tuple[str, int] | None


class FakeBrowser:
    def __init__(self, on_change) -> None:
        self.on_change = on_change
        self.items: list[_Session] = []
        self.closed = False
        self.loop_thread = ""

    async def start(self) -> None:
        self.loop_thread = threading.current_thread().name
        asyncio.get_running_loop().call_later(0.01, self.appear)

    def appear(self) -> None:
        self.items = [_Session("lobby", "Alice", 3, ("10.0.0.2", 7700))]
        self.on_change()

    def sessions(self) -> list[_Session]:
        return list(self.items)

    async def close(self) -> None:
        self.closed = True


def test_lan_sessions_run_the_browser_off_the_gui_thread(qtbot) -> None:
    browsers: list[FakeBrowser] = []

    def make(on_change):
        browsers.append(FakeBrowser(on_change))
        return browsers[-1]

    lan = LanSessions(browser_factory=make)
    with qtbot.wait_signal(lan.sessions_changed, timeout=T,
                           check_params_cb=lambda s: bool(s)) as blocker:
        lan.start()
    assert blocker.args == [[LanSessionInfo("lobby", "Alice", 3, ("10.0.0.2", 7700))]]
    assert browsers[0].loop_thread == "treecast-lan" and lan.available
    lan.start()  # already running: no second browser
    assert len(browsers) == 1
    lan.close()
    # The thread closes the browser and ends by itself (the leak check waits for it).
    qtbot.waitUntil(lambda: browsers[0].closed, timeout=T)
    lan.close()


def test_lan_sessions_survive_a_browser_that_fails(qtbot) -> None:
    class Broken(FakeBrowser):
        async def start(self) -> None:
            raise OSError("no multicast here")

    lan = LanSessions(browser_factory=Broken)
    lan.start()
    qtbot.waitUntil(lambda: lan._runner is not None and not lan.available, timeout=T)
    lan.close()


def test_room_probe_reports_only_the_latest_answer(qtbot) -> None:
    release = threading.Event()

    def query(host: str, port: int, room: str) -> RoomStatus:
        if room == "slow":
            release.wait(10)
        return RoomStatus(host, port, room, streamer="Alice" if room == "lobby" else None)

    probe = RoomProbe(query=query)
    got: list[RoomStatus] = []
    probe.room_checked.connect(got.append)
    probe.check("h", 1, "slow")
    probe.check("h", 1, "lobby")  # asked after: the slow answer must not win
    release.set()
    qtbot.waitUntil(lambda: len(got) == 1, timeout=T)
    qtbot.wait(50)
    assert got == [RoomStatus("h", 1, "lobby", streamer="Alice")]
    probe.close()


def test_room_query_accepts_sync_and_async_clients(monkeypatch) -> None:
    import types

    @dataclass
    class PeerList:
        peers: tuple[object, ...]
        streamer_name: str | None
        streamer_id: str | None = None

    module = types.ModuleType("peer.node.tracker_client")

    async def async_query(host, port, room, timeout):
        return PeerList(peers=(1, 2, 3), streamer_name="Alice", streamer_id="a")

    module.query_room = async_query  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "peer.node.tracker_client", module)
    status = bridge_mod._query_room_blocking("h", 1, "lobby")
    assert (status.streamer, status.peers, status.error) == ("Alice", 3, None)

    def refused(host, port, room, timeout):
        raise ConnectionRefusedError("refused")

    module.query_room = refused  # type: ignore[attr-defined]
    status = bridge_mod._query_room_blocking("h", 1, "lobby")
    assert status.error == "refused"


def test_lan_sessions_with_the_real_browser_on_loopback(qtbot) -> None:
    """A streamer advertised with mDNS on 127.0.0.1 shows up in the start screen list."""
    browser = pytest.importorskip("peer.lan.browser")
    from peer.lan.advertiser import LanAdvertiser
    from peer.node.runner import NodeThread
    from protocol.identity import Identity
    from protocol.lan import LanPeer

    lan = LanSessions(browser_factory=lambda cb: browser.LanBrowser(["127.0.0.1"], on_change=cb))
    advertiser_thread = NodeThread(name="test-advertiser").start()
    advertiser = None
    try:
        async def advertise():
            identity = Identity.generate()
            adv = LanAdvertiser(["127.0.0.1"], identity=identity)
            await adv.start(LanPeer(
                id=identity.peer_id, name="Alice", room="garden", role="streamer", depth=0,
                free_slots=4, version=1, host="127.0.0.1", port=40001, claim=1))
            return adv

        advertiser = advertiser_thread.submit(advertise()).result(timeout=20)
        seen: list[list[LanSessionInfo]] = []
        lan.sessions_changed.connect(seen.append)
        lan.start()
        qtbot.waitUntil(lambda: any(s.room == "garden" and s.streamer == "Alice"
                                    for batch in seen for s in batch), timeout=T)
    finally:
        lan.close()
        if advertiser is not None:
            advertiser_thread.submit(advertiser.close()).result(timeout=20)
        advertiser_thread.stop()
