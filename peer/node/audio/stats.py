"""The sound figures of a stats event (light: the GUI and events import it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioStats:
    """Sound statistics for the stats event (the GUI shows them next to video's).

    Attributes:
        sound: packets arrived (or were sent, on the streamer) in the last second.
        kbps: audio bit rate in (out at the streamer), payload and framing.
        loss_pct: packets missing by sequence gaps in the window, percent.
        lost: packets missing in total.
        concealed: 20 ms blocks played as silence because their packet was missing.
        late: packets that arrived after their playout time.
        skipped: packets that arrived in time but were passed over unplayed (the
            device fell behind, or the delay shrank).
        dropped: packets dropped from children's audio queues in total.
        delay_ms: playout delay (capture on the root's clock to the speaker).
        transit_ms: capture to arrival here, p50.
        av_offset_ms: sound minus picture delay: positive when sound comes after
            the picture. None until both are measured.
        paused: 20 ms blocks of silence after playing began, not concealment: a
            packet not yet here that may still come in time, a delay change too large
            to stretch, a stalled stream (with ``concealed``: every silent block the
            player chose; the device's own are ``device_underruns``).
        stretched: blocks played slightly slower so that the delay rose.
        compressed: blocks played slightly faster so that the delay fell.
        device_underruns: blocks the output device flagged as an underflow: it ran
            dry and played silence of its own (PortAudio's status flag).
        device_stalls: device callbacks more than 100 ms after the previous one.
        device_jumps_ahead: times the device's clock jumped ahead (a block heard
            80 ms or more later than counted: the device lost time).
        device_jumps_back: ... and back.
        device_lead_ms: the longest time in the last 15 s between the device asking
            for a block and hearing it (part of the playout delay).
    """

    sound: bool
    kbps: float
    loss_pct: float
    lost: int
    concealed: int
    late: int
    skipped: int
    dropped: int
    delay_ms: float | None
    transit_ms: float | None
    av_offset_ms: float | None
    paused: int = 0
    stretched: int = 0
    compressed: int = 0
    device_underruns: int = 0
    device_stalls: int = 0
    device_jumps_ahead: int = 0
    device_jumps_back: int = 0
    device_lead_ms: float | None = None
