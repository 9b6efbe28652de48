"""A child's video queue bounded in frames (MJPEG) or in bytes (H.264): a keyframe's
small followers ride out its drain; a link that stays behind still drops. The queue
is filled before the writer runs, so nothing is sent and no clock is involved."""

from __future__ import annotations

import asyncio

from peer.node.link import VIDEO_QUEUE_FRAMES, VIDEO_QUEUE_MAX_FRAMES, PeerLink
from tests.support.links import raw_link_pair


async def _link() -> tuple[PeerLink, asyncio.Server, asyncio.StreamWriter]:
    pair = await raw_link_pair()
    return pair.link, pair.server, pair.far_writer


async def _close(link: PeerLink, server: asyncio.Server, far: asyncio.StreamWriter) -> None:
    link.close("done")
    await link.wait_closed()
    far.close()
    server.close()
    await server.wait_closed()


async def test_a_keyframes_followers_fit_a_byte_budget_but_not_eight_frames() -> None:
    # A 720p keyframe (100 KB) then 15 P-frames (8 KB): half a second of stream.
    frames = [b"k" * 100_000] + [b"p" * 8_000] * 15
    budget = 312_000  # the relay's budget for 720p: two VBV buffers of 2.5 Mbit/s
    counted, server, far = await _link()
    bytes_bound, server2, far2 = await _link()
    try:
        frame_kept = [counted.send_video(f) for f in frames]
        byte_kept = [bytes_bound.send_video(f, budget) for f in frames]
        assert frame_kept.count(False) == len(frames) - VIDEO_QUEUE_FRAMES
        assert counted.queued_frames == VIDEO_QUEUE_FRAMES
        assert all(byte_kept) and bytes_bound.queued_frames == len(frames)
        assert bytes_bound.counters.frames_dropped == 0
        # A link that stays behind: past the budget the oldest goes, one per frame.
        more = 30
        kept = [bytes_bound.send_video(b"p" * 8_000, budget) for _ in range(more)]
        assert kept.count(False) > 0
        assert bytes_bound.counters.video_overflows == kept.count(False)
        # (the keyframe, oldest, went first; what is left is within the budget)
        assert 8_000 * bytes_bound.queued_frames <= budget < 8_000 * (
            bytes_bound.queued_frames + 1)
        # Clearing empties the byte count too: a fresh budget's worth fits again.
        bytes_bound.clear_video()
        assert all(bytes_bound.send_video(b"p" * 8_000, budget) for _ in range(30))
    finally:
        await _close(counted, server, far)
        await _close(bytes_bound, server2, far2)


async def test_the_byte_budget_never_holds_fewer_than_eight_nor_more_than_the_cap() -> None:
    link, server, far = await _link()
    try:
        # Frames bigger than the budget: the frame floor as without one.
        assert all(link.send_video(b"j" * 50_000, 10_000) for _ in range(VIDEO_QUEUE_FRAMES))
        assert not link.send_video(b"j" * 50_000, 10_000)
        link.clear_video()
        # Tiny frames: a hard cap on the count whatever the budget.
        kept = [link.send_video(b"p", 10**9) for _ in range(VIDEO_QUEUE_MAX_FRAMES + 5)]
        assert kept.count(False) == 5 and link.queued_frames == VIDEO_QUEUE_MAX_FRAMES
    finally:
        await _close(link, server, far)
