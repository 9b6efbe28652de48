"""Playback: the jitter buffer and decoder behind a lock, and the output device.

``AudioPlayer`` is what the node talks to: it takes received packets (event loop
thread) and hands out decoded 20 ms blocks (device thread), with volume and mute.
It moves the delay sound is heard at towards the jitter buffer's target by playing
slightly slower or faster (``stretch.py``) instead of pausing or skipping.
``DeviceOutput`` drives a PortAudio output stream (sounddevice) whose callback asks
the player for each block, telling it when the block will be heard: the stream's DAC
time, converted to the streamer's clock through the node's clock-offset estimate.

Why sounddevice (PortAudio) and not Qt Multimedia: headless relays and the CLI must
not import Qt (the node never does), the callback gives the DAC time of every block
(which is what a playout clock needs), and it is the same code on Linux, macOS and
Windows. See docs/ARCHITECTURE.md, "Audio".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from peer.node.audio.format import CHANNELS, FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, Pcm, silence
from peer.node.audio.jitter import AudioPacket, Block, JitterBuffer, Playout
from peer.node.audio.opus import AudioDecodeError, OpusDecoder
from peer.node.audio.source import import_sounddevice
from peer.node.audio.stretch import Stretcher, speed_for, step_for
from peer.node.errors import MediaError

log = logging.getLogger(__name__)

# Device latency asked for when the backend reports none: one Opus frame.
FALLBACK_LATENCY_S: Final = 0.02
# DeviceClock: a reported time this far from the counted one is a real jump (an
# underrun, a stalled process), followed at once; closer, it is followed by this
# fraction per block (about a second to settle: drift, not jitter).
RESYNC_S: Final = 0.08
FOLLOW_GAIN: Final = 0.02
# How long ahead of its time a block is asked for is remembered over this many blocks
# (15 s, as the station remembers transit): sound servers ask in bursts every few
# periods, and the longest lead counts.
LEAD_BLOCKS: Final = 750
# A callback this long after the previous one is a stall of the device thread (the
# sound server, or this process starved): PortAudio calls every ~20 ms, in bursts of a
# few blocks at most.
STALL_S: Final = 0.1


class DeviceClock:
    """When each block the device asks for will be heard, counted in samples.

    The device plays exactly one block per callback, so block ``n + 1`` is heard 20 ms
    after block ``n``, whenever the callback happens to run. The DAC time a backend
    reports with each callback jitters by tens of ms (callbacks come in bursts when the
    sound server refills its buffer); taken as is, the jitter buffer would skip a
    packet on one call and wait on the next, an audible stutter. So the clock advances
    by one block per call and follows the reported time only slowly (drift between the
    sound card's crystal and the wall clock), or at once after a real jump (an underrun,
    a stall of the process).
    """

    def __init__(self) -> None:
        self._next: float | None = None
        # Real jumps followed at once: the device heard a block later than counted (it
        # stalled and played silence of its own: an underrun) or earlier.
        self.jumps_ahead = 0
        self.jumps_back = 0

    def tick(self, measured: float) -> float:
        """The time the block asked for now will be heard, given the backend's
        ``measured`` estimate (both on the streamer's clock)."""
        expected = self._next
        if expected is None:
            expected = measured
        elif abs(measured - expected) > RESYNC_S:
            if measured > expected:
                self.jumps_ahead += 1
            else:
                self.jumps_back += 1
            expected = measured
        else:
            expected += FOLLOW_GAIN * (measured - expected)
        self._next = expected + FRAME_S
        return expected


class DeviceWatch:
    """The output device's own trouble, counted apart from the player's pauses, so
    that figures say which silence was whose: blocks PortAudio flagged as an output
    underflow (the device ran dry and played silence of its own), callbacks that came
    over ``STALL_S`` after the previous one (the device thread or the sound server
    stalled), and the longest interval between two callbacks."""

    def __init__(self) -> None:
        self.underruns = 0
        self.stalls = 0
        self.longest_gap_s = 0.0
        self._last: float | None = None

    def call(self, at: float, underflow: bool) -> None:
        """A callback at ``at`` (monotonic), with PortAudio's underflow flag."""
        if underflow:
            self.underruns += 1
        if self._last is not None:
            gap = at - self._last
            if gap > STALL_S:
                self.stalls += 1
            self.longest_gap_s = max(self.longest_gap_s, gap)
        self._last = at


class AudioPlayer:
    """Jitter buffer + Opus decoder + volume; safe to use from two threads.

    Args:
        delay_s: initial playout delay.
        on_bad_packet: called (on the device thread) with the error when a packet does
            not decode; the node closes the link that sent it.
    """

    def __init__(self, delay_s: float,
                 on_bad_packet: Callable[[AudioDecodeError], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._jitter = JitterBuffer(delay_s)
        self._decoder = OpusDecoder()
        self._stretcher = Stretcher()
        self._on_bad_packet = on_bad_packet
        self.volume = 1.0
        self.muted = False
        self.last_block: Block | None = None

    @property
    def jitter(self) -> JitterBuffer:
        """The buffer (read its counters; change it only through the player)."""
        return self._jitter

    def set_delay(self, delay_s: float) -> None:
        with self._lock:
            self._jitter.delay_s = delay_s

    def push(self, packet: AudioPacket, now: float) -> bool:
        """A packet arrived at ``now`` (streamer's clock)."""
        with self._lock:
            return self._jitter.push(packet, now)

    def reset(self) -> None:
        with self._lock:
            self._jitter.reset()
            self._decoder.reset()
            self._stretcher.clear()

    def pull(self, play_at: float) -> Pcm:
        """The 20 ms heard from ``play_at`` (streamer's clock), volume applied."""
        with self._lock:
            pcm = self._next_pcm(play_at)
        if self.muted or self.volume <= 0.0:
            return silence()
        if self.volume != 1.0:
            pcm = np.clip(pcm.astype(np.float32) * self.volume, -32768, 32767).astype(np.int16)
        return pcm

    def _next_pcm(self, play_at: float) -> Pcm:
        jitter, stretcher = self._jitter, self._stretcher
        step = 0.0
        cursor = jitter.cursor_capture
        if cursor is not None:
            # The delay the next packet would be heard at, against the target.
            heard = play_at + stretcher.pending_s() - cursor
            step = step_for(jitter.delay_s - heard)
        speed = speed_for(step)
        needed = stretcher.needed(speed)
        while stretcher.available < needed:
            heard_at = play_at + stretcher.pending_s() / speed
            block = jitter.next_block(heard_at)
            self.last_block = block
            if block.kind is Playout.WAIT:
                return stretcher.drain()  # what is left, then silence (a pause)
            stretcher.append(self._decode(block))
        if step > 0:
            jitter.counters.stretched += 1
        elif step < 0:
            jitter.counters.compressed += 1
        return stretcher.take(speed)

    def _decode(self, block: Block) -> Pcm:
        if block.packet is None:
            return silence()  # concealment
        try:
            return self._decoder.decode(block.packet.payload)
        except AudioDecodeError as exc:
            if self._on_bad_packet is not None:
                self._on_bad_packet(exc)
            return silence()

    @property
    def playing(self) -> bool:
        """Whether the last block was sound from the stream (not a wait or a gap)."""
        block = self.last_block
        return block is not None and block.kind is Playout.PLAY


class DeviceOutput:
    """A PortAudio output stream fed by an ``AudioPlayer``.

    Args:
        player: where blocks come from.
        root_offset: the streamer's clock minus ours, None while unknown (silence).
        device: PortAudio device name or index (None: the default output).

    Raises:
        MediaError: PortAudio is missing or the device cannot open.
    """

    def __init__(self, player: AudioPlayer, root_offset: Callable[[], float | None],
                 device: str | int | None = None) -> None:
        sd = import_sounddevice(device)
        self._player = player
        self._root_offset = root_offset
        self.latency_s = FALLBACK_LATENCY_S
        # The longest time between asking for a block and hearing it, recently: a packet
        # must be here that long before its time (the reported latency is only the
        # device's buffer; a sound server asking for several blocks at once adds more).
        self.lead_s = FALLBACK_LATENCY_S
        self._leads: deque[float] = deque(maxlen=LEAD_BLOCKS)  # device thread only
        self._clock = DeviceClock()
        self.blocks = 0
        self.failures = 0
        self.watch = DeviceWatch()  # the device's own trouble, apart from the player's
        self._closed = False
        try:
            self._stream = sd.OutputStream(
                samplerate=SAMPLE_RATE, channels=CHANNELS, dtype="int16",
                blocksize=FRAME_SAMPLES, device=device, latency="low",
                callback=self._callback)
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            name = "the default audio output" if device is None else f"audio output {device!r}"
            raise MediaError(f"cannot open {name}: {exc}") from exc
        self.latency_s = float(self._stream.latency) or FALLBACK_LATENCY_S
        self.lead_s = max(self.lead_s, self.latency_s)

    @property
    def clock_jumps(self) -> tuple[int, int]:
        """How often the device clock jumped ahead (heard later than counted: the
        device stalled) and back."""
        return self._clock.jumps_ahead, self._clock.jumps_back

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        self.watch.call(time.monotonic(), bool(getattr(status, "output_underflow", False)))
        try:
            self._fill(outdata, frames, time_info)
        except Exception:  # never raise into PortAudio's thread: play silence instead
            self.failures += 1
            if self.failures == 1:
                log.exception("audio output callback failed")
            outdata.fill(0)

    def _fill(self, outdata: Any, frames: int, time_info: Any) -> None:
        now = time.time()
        dac, current = time_info.outputBufferDacTime, time_info.currentTime
        # When the first sample of this buffer reaches the speaker, on our wall clock.
        ahead = dac - current if dac > 0 and current > 0 else self.latency_s
        offset = self._root_offset()
        self.blocks += 1
        if offset is None or frames != FRAME_SAMPLES:
            outdata.fill(0)
            return
        play_at = self._clock.tick(now + ahead + offset)
        self._leads.append(play_at - (now + offset))
        self.lead_s = max(self._leads)  # one float: read on the loop without a lock
        outdata[:] = self._player.pull(play_at)

    def close(self) -> None:
        """Stop the stream (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:  # a vanished device must not block shutdown
                log.debug("closing the audio output failed", exc_info=True)
