"""When to tell a viewer nobody can serve it (peer/node/stranded.py)."""

from __future__ import annotations

from peer.node.stranded import STRANDED_AFTER_S, STRANDED_MESSAGE, StrandedWatch


def test_said_once_after_the_grace_then_again_only_after_a_change() -> None:
    watch = StrandedWatch()
    stuck = {"waiting": True, "reachable": False, "candidates": 0}
    assert watch.update(0.0, **stuck) is None
    assert watch.update(STRANDED_AFTER_S - 0.1, **stuck) is None
    assert watch.update(STRANDED_AFTER_S, **stuck) == STRANDED_MESSAGE
    assert watch.update(STRANDED_AFTER_S + 1, **stuck) is None  # not repeated
    assert watch.update(20.0, waiting=True, reachable=False, candidates=1) is None
    assert watch.update(21.0, **stuck) is None
    assert watch.update(21.0 + STRANDED_AFTER_S, **stuck) == STRANDED_MESSAGE


def test_not_said_when_something_can_help() -> None:
    for state in ({"waiting": False, "reachable": False, "candidates": 0},
                  {"waiting": True, "reachable": True, "candidates": 0},
                  {"waiting": True, "reachable": False, "candidates": 2}):
        watch = StrandedWatch()
        assert all(watch.update(t, **state) is None for t in (0.0, 10.0, 100.0)), state


def test_the_message_says_why_and_what_helps() -> None:
    assert "accepts no incoming connections" in STRANDED_MESSAGE
    assert "--upnp" in STRANDED_MESSAGE and "--relay" in STRANDED_MESSAGE
