"""A node's sound: sends it (streamer), forwards, plays and records it (everyone else).

Theory of operation
-------------------
The node calls in at a handful of points and keeps no audio logic itself:

- streamer: ``open_source`` (blocking, before streaming), ``start_stream``, then
  ``video_released`` for every captured frame: the first one anchors the audio
  schedule, so sound and picture at the same position in the source carry the same
  capture time; ``stop_stream`` at the end.
- everyone else: ``received`` for each AudioFrame from the parent. The packet goes to
  every child first, as the same bytes (relays never decode or re-encode sound), on
  each child's own small audio queue (``send_audio``), so a video backlog never delays
  it and a video drop never drops it. Then it is counted (rate, loss by sequence
  numbers, transit time), recorded, and played.

Playout delay: a packet must arrive before the device asks for it, so the delay is at
least the slowest transit of the last 15 s plus how far ahead the device asks for a
block, plus a margin. The player reaches a new delay by playing slightly slower or
faster (1 ms per 20 ms block, ``stretch.py``), not by a pause or a skip; only a change
over 150 ms is closed at once. Stretched sound is slightly detuned while it lasts, and
a rise takes time to reach, so the delay still moves seldom: it rises as soon as one
packet needs more than it gives (before the next one is late), then to 20 ms above
the need, so that the next slightly slower packet does not move it again; it falls
only when the need is 40 ms below it and it has not risen for a minute. To keep lip sync, it
is raised to the picture's display delay (``video_shown`` reports it) when the picture
is slower, but never beyond ``MAX_LIPSYNC_WAIT_S`` and only while the picture's delay
is steady: when video is late, stalled or overloaded, sound keeps its own pace rather
than waiting for it (the offset then shows in the stats).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, Protocol

from peer.node.audio.config import AudioConfig
from peer.node.audio.events import SoundResumed
from peer.node.audio.format import FRAME_S
from peer.node.audio.jitter import DEFAULT_DELAY_S, AudioPacket
from peer.node.audio.stats import AudioStats
from peer.node.config import CameraSource, FileSource, PatternSource, SourceSpec
from peer.node.errors import MediaError
from peer.node.events import NodeEvent
from peer.node.stats import StreamStats, percentile
from protocol import AudioFrame, encode

if TYPE_CHECKING:
    # The encoder, sources and player (PyAV, numpy, OpenCV for the tone's pattern) are
    # imported where they are first used: a relay or silent viewer only forwards and
    # counts packets, and would pay ~0.4 s of CPU and ~15 MB at start for them.
    from peer.node.audio.capture import AudioCapture, EncodedAudio
    from peer.node.audio.opus import AudioDecodeError
    from peer.node.audio.output import AudioPlayer, DeviceOutput
    from peer.node.audio.source import AudioSource

log = logging.getLogger(__name__)

# Margin over the audio's slowest recent transit: scheduling jitter of the device thread.
JITTER_MARGIN_S: Final = 0.015
# Sound waits for a slower picture up to this delay; beyond it (an overloaded video
# path) it plays at its own pace: late video is better than stalled sound.
MAX_LIPSYNC_WAIT_S: Final = 0.35
# Packets behind the slowest-transit figure: 15 s. A spike (a keyframe on a slow link,
# a streamer busy for a moment) recurs every few seconds; forgetting it after 3 s made
# the delay fall between spikes and the next one late (heard as silence).
TRANSIT_SAMPLES: Final = 750
VIDEO_SAMPLES: Final = 60
# A picture report older than this is stale (video stalled or stopped).
VIDEO_FRESH_S: Final = 1.0
# Sound waits for the picture only while the picture's delay is steady: its middle 80 %
# within this (a relayed H.264 picture varies by a decode, ~10-20 ms; under a video
# overload by hundreds of ms).
VIDEO_STEADY_SPREAD_S: Final = 0.05
# The stream "has sound" while packets arrived this recently.
SOUND_FRESH_S: Final = 1.0
# The picture's time line moved (see ``_follow``): a jump beyond this is a pause, a
# seek or a loop; a shift beyond the small bound for this many frames in a row is real.
RESYNC_JUMP_S: Final = 0.2
RESYNC_SMALL_S: Final = 0.03
RESYNC_FRAMES: Final = 5
# Silence from the parent longer than this (five packets) is a gap worth reporting.
SOUND_GAP_S: Final = 0.1
# Every delay change is heard (a pause when it grows, a skip when it shrinks): the
# delay is re-aimed twice a second, set this far above what it needs (a packet a few
# ms slower than the slowest so far must not move it again: at steady state under a
# video overload each such rise was a 20 ms pause), and lowered only when it is more
# than headroom + hysteresis above the need.
DELAY_HEADROOM_S: Final = 0.02
DELAY_HYSTERESIS_S: Final = 0.02
DELAY_UPDATE_PACKETS: Final = 25
# ... and not within this long of a rise: the spikes that raise it (a busy moment at
# the streamer or here) recur every several seconds, and falling in between made each
# recurrence a pause again (measured: a rise, a fall 15 s later, the next rise).
DELAY_FALL_AFTER_S: Final = 60.0


class AudioSink(Protocol):
    """A child link's audio queue."""

    def send_audio(self, data: bytes) -> bool:
        """Queue one packet; False when an older one had to be dropped."""


class AudioRecorder(Protocol):
    """Where received packets are recorded (the recording's audio track)."""

    def write_audio(self, packet: bytes, captured_at: float) -> None:
        """Append one Opus packet captured at ``captured_at`` (root's clock)."""


class AudioStation:
    """The node's audio side. All methods run on the node's event loop.

    Args:
        config: the node's sound settings.
        window_s: statistics window.
        root_offset: the root's clock minus ours (None while unknown).
        on_bad_packet: called on the loop with a reason when the parent sent a packet
            that does not decode; the node closes that link.
        on_warning: called on the loop with a sentence for the user (sound trouble
            that does not stop the stream).
    """

    def __init__(self, config: AudioConfig, *, window_s: float,
                 root_offset: Callable[[], float | None],
                 on_bad_packet: Callable[[str], None],
                 on_warning: Callable[[str], None],
                 on_event: Callable[[NodeEvent], None] = lambda event: None) -> None:
        self.config = config
        self._root_offset = root_offset
        self._on_bad_packet = on_bad_packet
        self._on_warning = on_warning
        self._on_event = on_event
        self._stats = StreamStats(window_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.player: AudioPlayer | None = None
        self._output: DeviceOutput | None = None
        # The recording's sound track now (None: not recording, or not one with sound).
        self.recording: Callable[[], AudioRecorder | None] = lambda: None
        # Streamer side.
        self._source: AudioSource | None = None
        self._anchor = 0.0
        self._drifts: deque[float] = deque(maxlen=RESYNC_FRAMES)
        self._prepared: tuple[SourceSpec, AudioSource | None] | None = None
        self._loop_source = False
        self._capture: AudioCapture | None = None
        self._send_to: Callable[[], Iterable[AudioSink]] = list
        self._epoch: Callable[[], int] = lambda: 0
        self._sign: Callable[[AudioFrame], AudioFrame] = lambda frame: frame
        # Receiver side.
        self._transit: deque[float] = deque(maxlen=TRANSIT_SAMPLES)
        self._video: deque[float] = deque(maxlen=VIDEO_SAMPLES)  # ready to show
        self._shown: deque[float] = deque(maxlen=VIDEO_SAMPLES)  # handed to the display
        self._video_at = 0.0
        self._last_packet_at = 0.0
        self._stream_count = 0
        self._epoch_seen: int | None = None
        self._last_seq: int | None = None
        self._parent_lost = False
        self._raised_at = float("-inf")  # when the playout delay last rose
        self.dropped = 0

    # --- lifecycle ----------------------------------------------------------------

    def open_output(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start playback when the config asks for it.

        Raises:
            MediaError: the named output device is missing (a missing default device
                only warns: the stream goes on without sound here).
        """
        self._loop = loop
        if not self.config.play or self._output is not None:
            return
        from peer.node.audio.output import DeviceOutput

        player = self._ensure_player()
        try:
            self._output = DeviceOutput(player, self._root_offset, self.config.output_device)
        except MediaError as exc:
            if self.config.output_device is not None:
                raise  # a device the user named: their mistake to hear about
            # The default device (the app's, or a machine without a sound card): the
            # stream goes on, silent here, and the user is told why.
            self._warn(f"{exc}; playing without sound")

    def _ensure_player(self) -> AudioPlayer:
        if self.player is None:
            from peer.node.audio.output import AudioPlayer

            self.player = AudioPlayer(DEFAULT_DELAY_S, on_bad_packet=self._bad_from_device)
            self.player.volume = self.config.volume
            self.player.muted = self.config.muted
        return self.player

    def close(self) -> None:
        """Stop sending and playing (idempotent)."""
        self.stop_stream()
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[1] is not None:
            prepared[1].close()
        if self._output is not None:
            self._output.close()
            self._output = None

    def set_volume(self, volume: float) -> None:
        if not 0.0 <= volume <= 1.0:
            raise ValueError("volume must be between 0 and 1")
        self._ensure_player().volume = volume

    def set_muted(self, muted: bool) -> None:
        self._ensure_player().muted = muted

    # --- streamer -----------------------------------------------------------------

    def open_source(self, spec: SourceSpec) -> AudioSource | None:
        """The sound to stream with ``spec`` (blocking: call it off the loop).

        A file without sound, or sound turned off, gives None. A file whose sound
        cannot be decoded gives None and a warning: its picture still streams.

        Raises:
            MediaError: the user named something that does not exist (a track
                number, a microphone).
        """
        cfg = self.config
        if not cfg.enabled:
            return None
        from peer.node.audio.opus import AudioDecodeError
        from peer.node.audio.source import FileAudioSource, MicSource, NoAudioError
        from peer.node.audio.tone import ToneSource

        if isinstance(spec, FileSource):
            try:
                return FileAudioSource(spec.path, cfg.track)
            except NoAudioError:
                return None
            except AudioDecodeError as exc:
                self._warn(f"{exc}; streaming the picture without sound")
                return None
        if isinstance(spec, PatternSource):
            return ToneSource(spec.fps)
        if isinstance(spec, CameraSource) and cfg.mic:
            return MicSource(cfg.mic_device)
        return None

    def start_stream(self, source: AudioSource | None, *, loop_source: bool,
                     children: Callable[[], Iterable[AudioSink]],
                     epoch: Callable[[], int],
                     sign: Callable[[AudioFrame], AudioFrame] = lambda frame: frame) -> None:
        """Get ready to send ``source``; sound starts with the first video frame.
        ``sign``: the streamer's signature on every packet (issue 13)."""
        self.stop_stream()
        self._sign = sign
        self._source = source
        self._loop_source = loop_source
        self._send_to = children
        self._epoch = epoch

    def video_released(self, captured_at: float, position_s: float) -> None:
        """A captured frame left the pacer. The first one starts the sound, anchored
        at the frame's capture time minus its position in the source."""
        anchor = captured_at - position_s
        if self._capture is not None:
            # Sound is a demand: the capture encodes only while a child asks for it.
            self._capture.set_wanted(bool(self._send_to()))
            self._capture.video_moved()
            self._follow(anchor)
            return
        if self._source is None:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._anchor = anchor
        self._drifts.clear()
        from peer.node.audio.capture import AudioCapture

        self._capture = AudioCapture(self._source, on_packet=self._send_packet,
                                     on_end=self._source_ended, anchor=anchor,
                                     loop_source=self._loop_source)
        self._capture.set_wanted(bool(self._send_to()))
        self._capture.start(self._loop)

    def _follow(self, anchor: float) -> None:
        """Move the sound's time line when the picture's moved: at once for a jump (a
        pause, a seek, a loop), after a few frames for a small shift (one late frame
        is the pacer's jitter, not a new time line)."""
        assert self._capture is not None
        drift = anchor - self._anchor
        self._drifts.append(drift)
        small = all(abs(d) > RESYNC_SMALL_S for d in self._drifts) and \
            len(self._drifts) == self._drifts.maxlen
        if abs(drift) > RESYNC_JUMP_S or small:
            log.info("sound follows the picture's time line: moved %.3f s", drift)
            self._anchor = anchor
            self._drifts.clear()
            self._capture.realign(anchor)

    def stop_stream(self) -> None:
        """Stop sending (idempotent). The capture thread closes the source."""
        capture, self._capture = self._capture, None
        source, self._source = self._source, None
        if capture is not None:
            capture.stop()
        elif source is not None:
            source.close()  # never started: nobody else will close it

    def listening(self, *, recording: bool) -> bool:
        """Whether this peer uses received sound itself: it plays it, or records it
        (``recording``: a recording is open). A peer that does neither asks its parent
        for none (only what its children ask for), so it never pays for 50 packets a
        second it would only count."""
        cfg = self.config
        return cfg.enabled and (cfg.play or recording)

    @property
    def sending(self) -> bool:
        return self._capture is not None

    def _send_packet(self, packet: EncodedAudio) -> None:
        if self._capture is None:
            return  # stopped meanwhile
        children = self._send_to()
        if not children:
            return  # the last listener left since the capture was told: sign nothing
        data = encode(self._sign(AudioFrame(self._epoch(), packet.seq, packet.captured_at,
                                            packet.packet)))
        self._stats.frame_produced(time.time(), len(data), packet.seq)
        self._last_packet_at = time.monotonic()
        self._fan_out(data, children)

    def _source_ended(self, error: MediaError | None) -> None:
        if error is not None:
            self._warn(f"sound stopped: {error}; the picture goes on")
        self._capture = None

    # --- receiver -----------------------------------------------------------------

    def received(self, frame: AudioFrame, children: Iterable[AudioSink]) -> None:
        """A packet from the parent (its epoch already checked by the node)."""
        data = encode(frame)  # the same bytes for every child: never re-encoded
        self._fan_out(data, children)
        now = time.time()
        arrived = time.monotonic()
        if frame.epoch != self._epoch_seen:
            self._epoch_seen = frame.epoch
            self._stream_count += 1  # stats fence by streams seen (as the node's video)
            self._last_seq = None
        elif self._last_seq is not None and (
                self._parent_lost or arrived - self._last_packet_at > SOUND_GAP_S):
            self._on_event(SoundResumed(
                gap_ms=round((arrived - self._last_packet_at) * 1000, 1),
                lost=max(0, frame.seq - self._last_seq - 1)))
        self._parent_lost = False
        self._last_packet_at = arrived
        self._last_seq = frame.seq
        offset = self._root_offset()
        transit = None if offset is None else now + offset - frame.captured_at
        self._stats.frame_received(now, len(data), frame.seq, self._stream_count, transit)
        if transit is not None:
            self._transit.append(transit)
        recorder = self.recording()
        if recorder is not None:
            try:
                recorder.write_audio(frame.opus, frame.captured_at)
            except MediaError:
                # The recording closed itself (a full disk); its picture side reports it.
                log.debug("sound not recorded", exc_info=True)
        if self.player is not None and offset is not None:
            self._aim(self.player, transit, frame.seq)
            self.player.push(AudioPacket(frame.epoch, frame.seq, frame.captured_at,
                                         frame.opus), now + offset)

    def parent_lost(self) -> None:
        """The parent went: the next packet (from the new one) reports the gap."""
        self._parent_lost = True

    def prepare(self, spec: SourceSpec) -> None:
        """Open the sound of ``spec`` early (blocking), so a bad track number or a
        missing microphone is the user's first error, before any network."""
        self._prepared = (spec, self.open_source(spec))

    def take_source(self, spec: SourceSpec) -> AudioSource | None:
        """The source ``prepare`` opened for ``spec``, else a fresh one (blocking)."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == spec:
            return prepared[1]
        if prepared is not None and prepared[1] is not None:
            prepared[1].close()
        return self.open_source(spec)

    def video_shown(self, ready_s: float, shown_s: float) -> None:
        """A picture was ready to show ``ready_s`` after its capture (decoded) and was
        handed to the display ``shown_s`` after it (after ``picture_wait``)."""
        self._video.append(ready_s)
        self._shown.append(shown_s)
        self._video_at = time.monotonic()

    def picture_shown(self, captured_at: float, ready_at: float, shown_at: float) -> None:
        """A received picture captured at ``captured_at`` (root's clock) was ready at
        ``ready_at`` and handed to the screen at ``shown_at`` (our clock). Called on a
        display worker thread; ``video_shown`` runs on the loop."""
        offset = self._root_offset()
        if offset is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.video_shown, ready_at + offset - captured_at,
                                            shown_at + offset - captured_at)

    def picture_wait(self, captured_at: float) -> float:
        """How long to hold a decoded picture captured at ``captured_at`` (root's clock)
        so that it is shown when its sound is heard; 0 while no sound plays here.

        The sound's delay cannot go below what the device and the path need; a picture
        that is ready earlier waits for it (at most MAX_LIPSYNC_WAIT_S).
        """
        player, offset = self.player, self._root_offset()
        if player is None or self._output is None or offset is None or not self._has_sound():
            return 0.0
        # The delay sound is heard at now (it moves towards the target by stretching).
        wait = captured_at + player.jitter.playing_delay_s - (time.time() + offset)
        return min(max(0.0, wait), MAX_LIPSYNC_WAIT_S)

    def _has_sound(self) -> bool:
        last = self._last_packet_at
        if self._capture is not None:  # the streamer has sound even when nobody asks
            last = max(last, self._capture.last_block_at)
        return time.monotonic() - last < SOUND_FRESH_S

    def _aim(self, player: AudioPlayer, transit: float | None, seq: int) -> None:
        """Move the playout delay: up at once when this packet needed more than it
        gives (the next one would be late), else re-aimed twice a second; set
        ``DELAY_HEADROOM_S`` above the need, lowered only past the hysteresis."""
        current = player.jitter.delay_s
        urgent = transit is not None and self._need(transit) > current
        if not urgent and seq % DELAY_UPDATE_PACKETS:
            return
        target = self.playout_delay()
        if transit is not None:
            target = max(target, self._need(transit))
        now = time.monotonic()
        if target > current:
            player.set_delay(target + DELAY_HEADROOM_S)
            self._raised_at = now
        elif (current - target > DELAY_HEADROOM_S + DELAY_HYSTERESIS_S
              and now - self._raised_at > DELAY_FALL_AFTER_S):
            player.set_delay(target + DELAY_HEADROOM_S)

    def _need(self, transit: float) -> float:
        """The delay a packet that took ``transit`` needs to be here in time: the
        device asks for a block ``lead`` before it is heard, and a packet counts as
        due up to half a block early."""
        lead = self._output.lead_s if self._output is not None else FRAME_S
        return transit + lead + FRAME_S / 2 + JITTER_MARGIN_S

    def playout_delay(self) -> float:
        """The delay sound is played at (see the module docstring)."""
        need = DEFAULT_DELAY_S
        if len(self._transit) >= 5:
            # The slowest packet of the last 15 s, not a percentile: on a congested
            # link the spikes are what would be heard as holes.
            need = self._need(max(self._transit))
        video = self._video_delay()
        if video is not None and need < video <= MAX_LIPSYNC_WAIT_S:
            return video
        return need

    def _shown_delay(self) -> float | None:
        if not self._shown or time.monotonic() - self._video_at > VIDEO_FRESH_S:
            return None
        return percentile(sorted(self._shown), 50)

    def _video_delay(self) -> float | None:
        """The picture's delay to wait for: its median, while the picture is fresh and
        steady. An overloaded picture path (frames dropped, queued, late by a varying
        amount) is not waited for: following its swings moved the sound's delay every
        few seconds, a pause or a skip each time."""
        if not self._video or time.monotonic() - self._video_at > VIDEO_FRESH_S:
            return None
        ordered = sorted(self._video)
        if percentile(ordered, 90) - percentile(ordered, 10) > VIDEO_STEADY_SPREAD_S:
            return None
        return percentile(ordered, 50)

    def _fan_out(self, data: bytes, children: Iterable[AudioSink]) -> None:
        for child in children:
            if not child.send_audio(data):
                self.dropped += 1

    def _bad_from_device(self, exc: AudioDecodeError) -> None:
        # Called on the device thread: hand it to the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_bad_packet, str(exc))

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self._on_warning(message)

    # --- stats ----------------------------------------------------------------------

    def snapshot(self) -> AudioStats:
        now = time.time()
        snap = self._stats.snapshot(now)
        sound = self._has_sound()
        counters = self.player.jitter.counters if self.player is not None else None
        delay = None
        if self.player is not None and self._transit:
            delay = round(self.player.jitter.playing_delay_s * 1000, 1)
        shown = self._shown_delay()
        offset = None if delay is None or shown is None else round(delay - shown * 1000, 1)
        transit = percentile(sorted(self._transit), 50) if self._transit else None
        stats = AudioStats(
            sound=sound,
            kbps=round(snap.kbps_in, 1),
            loss_pct=round(snap.loss_pct, 3),
            lost=snap.lost,
            concealed=counters.concealed if counters else 0,
            late=counters.late if counters else 0,
            skipped=counters.skipped if counters else 0,
            dropped=self.dropped,
            delay_ms=delay,
            transit_ms=None if transit is None else round(transit * 1000, 1),
            av_offset_ms=offset,
            paused=counters.paused if counters else 0,
            stretched=counters.stretched if counters else 0,
            compressed=counters.compressed if counters else 0,
        )
        output = self._output
        if output is None:
            return stats
        ahead, back = output.clock_jumps
        return dataclasses.replace(
            stats, device_underruns=output.watch.underruns,
            device_stalls=output.watch.stalls,
            device_jumps_ahead=ahead, device_jumps_back=back,
            device_lead_ms=round(output.lead_s * 1000, 1))
