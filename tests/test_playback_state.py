"""The tree's playback state (peer.node.playback): what the streamer sends, what relays
keep, forward and report, and what a late or stale message does."""

from __future__ import annotations

from peer.node.events import PlaybackChanged
from peer.node.playback import PlaybackState
from protocol import limits
from protocol.messages import Playback


def test_streamer_pause_seek_resume_messages() -> None:
    state = PlaybackState()
    state.new_stream(7)
    assert state.for_new_child(7) is None  # playing: nothing to tell a new child
    assert state.local(7, True, 61.5, 120.0, 1.0) == Playback(7, True, 61_500, 120_000, 1.0)
    assert state.for_new_child(7) == Playback(7, True, 61_500, 120_000, 1.0)
    assert state.local(7, True, 30.0, 120.0, 2.0) == Playback(7, True, 30_000, 120_000, 2.0)
    assert state.local(7, False, 30.0, 120.0, 3.0) == Playback(7, False, 30_000, 120_000, 3.0)
    assert state.for_new_child(7) is None
    # Out-of-range positions are clamped to what the wire allows.
    assert state.local(7, True, -3.0, 1e12, 4.0).duration_ms == limits.MAX_MEDIA_MS
    # Notices of one stream are strictly ordered by ``at`` (receivers drop repeats).
    assert state.local(7, False, 0.0, None, 4.0).at > 4.0


def test_relay_keeps_forwards_once_and_reports() -> None:
    relay = PlaybackState()
    relay.new_stream(7)
    paused = Playback(7, True, 5_000, 10_000)
    assert relay.received(paused, 7)
    event = relay.event()
    assert event == PlaybackChanged(paused=True, position_s=5.0, duration_s=10.0, t=event.t)
    assert not relay.received(paused, 7)  # a repeat is not news: no forwarding storm
    assert relay.for_new_child(7) == paused
    assert relay.received(Playback(7, False, 5_000, 10_000), 7)
    assert relay.for_new_child(7) is None


def test_a_stale_epoch_changes_nothing() -> None:
    relay = PlaybackState()
    relay.new_stream(8)
    assert not relay.received(Playback(7, True, 1_000, None), 8)
    assert not relay.paused and relay.for_new_child(8) is None
    # A new stream starts playing, whatever the old one was doing.
    relay.received(Playback(8, True, 1_000, None), 8)
    relay.new_stream(9)
    assert not relay.paused
