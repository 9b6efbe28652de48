"""A private room's members refusing our proof is said, once, instead of a silent wait.

The attacker (or a hand-made config) holds the room's opaque id with another secret:
it learns the members from the tracker, but every member it dials closes the link
"not a member of this private room". The node says so as an ErrorRaised the app
turns into advice; strangers we refuse ourselves are not news for our user.
"""

from __future__ import annotations

import asyncio

import pytest

from peer.node.config import NodeConfig
from peer.node.events import ErrorRaised, Joined, NodeEvent
from peer.node.membership import NOT_A_MEMBER, REFUSED_MESSAGE, MembershipRefusals
from peer.node.node import Node
from protocol.private_room import private_room
from tests.support.procs import session, wait_for


def test_only_our_dials_refused_while_seeking_count_and_only_once() -> None:
    reason = f"?: {NOT_A_MEMBER} (no proof of its passphrase)"
    refusals = MembershipRefusals()
    # A stranger we refused on our listener, a refusal on a reversal dial while we
    # have a parent, a dial that failed for another reason: nothing to say.
    assert refusals.refused(reason, outbound=False, seeking=True) is None
    assert refusals.refused(reason, outbound=True, seeking=False) is None
    assert refusals.refused("connection closed by peer", outbound=True, seeking=True) is None
    assert refusals.refused(reason, outbound=True, seeking=True) == REFUSED_MESSAGE
    # Every member refuses in turn: one message, not one per dial.
    assert refusals.refused(reason, outbound=True, seeking=True) is None


@pytest.mark.slow
async def test_a_peer_with_the_id_but_another_secret_hears_it_was_refused() -> None:
    room, _secret = private_room("movies", "open sesame")
    _, other_secret = private_room("movies", "open barley")
    with session() as s:
        port = s.start_tracker()
        root = s.start_peer("root", "--room", "movies", "--secret", "open sesame",
                            "--test-pattern", "320x180", "--fps", "10")
        assert wait_for(lambda: root.last("stream_started"), 60)
        events: list[NodeEvent] = []
        node = Node(NodeConfig(name="liar", room=room, room_secret=other_secret,
                               tracker=("127.0.0.1", port), listen_host="127.0.0.1"),
                    events.append)
        await node.start()
        try:
            async with asyncio.timeout(60):
                while not any(isinstance(e, ErrorRaised) for e in events):
                    await asyncio.sleep(0.05)  # polling the condition, not timing
        finally:
            await node.stop()
        errors = [e for e in events if isinstance(e, ErrorRaised)]
        assert [e.message for e in errors] == [REFUSED_MESSAGE]
        # (Had link.py changed its wording, no message would have come: NOT_A_MEMBER
        # is checked against the real refusal here.)
        assert not any(isinstance(e, Joined) for e in events)
        assert (root.last("stats") or {}).get("children", 0) == 0
