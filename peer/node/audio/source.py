"""Audio sources: a video file's sound track, a microphone, the test pattern's beeps.

Every source hands out 20 ms blocks of 48 kHz stereo s16 (``format.Pcm``), whatever
it reads, so the encoder and everything after it see one format. Sources block:
a :class:`~peer.node.audio.capture.AudioCapture` runs them on a worker thread.

Opening tells three outcomes apart, because the user is told different things:
``NoAudioError`` (the file has no sound: stream video as before), ``AudioDecodeError``
(there is a sound track we cannot decode: stream video with a warning) and
``MediaError`` (the user asked for something that does not exist: a bad
``--audio-track``, a missing microphone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

import av
import numpy as np

from peer.node.audio.format import CHANNELS, FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, Pcm
from peer.node.audio.opus import AudioDecodeError
from peer.node.audio.tone import ToneSource
from peer.node.errors import MediaError

log = logging.getLogger(__name__)

# A sound track that claims to start more than this after the picture is mislabelled
# more likely than silent for that long; we pad at most this much.
MAX_LEAD_S = 10

__all__ = [
    "AudioSource",
    "FileAudioSource",
    "MicSource",
    "NoAudioError",
    "ToneSource",
]


class NoAudioError(MediaError):
    """The source has no sound track: stream the picture alone, as before."""


class AudioSource(Protocol):
    """A blocking reader of 20 ms blocks. One thread reads, then closes.

    Attributes:
        paced: True when the reader must pace blocks to real time (files, tone);
            False when ``read`` blocks until the device has the next block (mic).
    """

    paced: bool

    def read(self) -> Pcm | None:
        """The next block; None at the end.

        Raises:
            MediaError: the source failed (AudioDecodeError for undecodable data).
        """

    def rewind(self) -> None:
        """Back to the start (no-op for live sources)."""

    def seek(self, position_s: float) -> None:
        """Go on from ``position_s`` (paced sources; live ones ignore it)."""

    def close(self) -> None:
        """Release the source. Idempotent."""


class FileAudioSource:
    """One audio track of a file, anything FFmpeg (PyAV) decodes: AAC, MP3, Opus, AC-3...

    The track is resampled to 48 kHz stereo. It is aligned with the video the way a
    player aligns them: if the track starts later than the file's first video frame,
    silence fills the difference; if earlier, the lead is cut.

    Args:
        path: the file.
        track: index among the file's audio tracks (None: the first).

    Raises:
        NoAudioError: the file has no audio track.
        MediaError: ``track`` does not exist (a usage mistake).
        AudioDecodeError: the track cannot be decoded.
    """

    paced = True

    def __init__(self, path: str, track: int | None = None) -> None:
        self.path = path
        self.track = track
        try:
            container = av.open(path)
        except (av.FFmpegError, OSError) as exc:
            raise AudioDecodeError(f"cannot read audio from {path}: {exc}") from exc
        streams = container.streams.audio
        if not streams:
            container.close()
            if track is not None:
                raise MediaError(f"--audio-track {track}: {path} has no audio tracks")
            raise NoAudioError(f"{path} has no audio track")
        if track is not None and not 0 <= track < len(streams):
            container.close()
            raise MediaError(f"--audio-track {track}: {path} has audio tracks 0-"
                             f"{len(streams) - 1}")
        self.codec_name = streams[track or 0].codec_context.name
        container.close()
        self._blocks: Iterator[Pcm] | None = None
        self._container: Any = None
        self._open()
        # Decode the first block now: a track we cannot decode is known before streaming.
        self._pending: Pcm | None = self._next()
        if self._pending is None:
            self.close()
            raise AudioDecodeError(
                f"the {self.codec_name} audio track of {path} decodes to nothing")

    def _open(self, position_s: float = 0.0) -> None:
        if self._container is not None:
            self._container.close()
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise AudioDecodeError(f"cannot reopen audio of {self.path}: {exc}") from exc
        self._blocks = self._decode(self._container, position_s)

    def _decode(self, container: Any, position_s: float) -> Iterator[Pcm]:
        stream = container.streams.audio[self.track or 0]
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
        # Where the picture starts: the audio is placed against it.
        video = container.streams.video
        origin = (_start_s(video[0]) if video else _start_s(stream)) + position_s
        if position_s > 0 and stream.time_base is not None:
            # To the packet at or before the position; the samples before it are cut.
            container.seek(int(origin / stream.time_base), stream=stream, backward=True)
        pending = np.zeros((0, CHANNELS), np.int16)
        placed = False
        skip = 0  # samples to cut: the sound track starts before the picture
        for packet in container.demux(stream):
            for frame in packet.decode():
                if not placed:
                    placed = True
                    first = frame.time if frame.time is not None else _start_s(stream)
                    lead = round((first - origin) * SAMPLE_RATE)
                    if lead > 0:  # sound starts after the picture: silence until then
                        pending = np.zeros((min(lead, MAX_LEAD_S * SAMPLE_RATE), CHANNELS),
                                           np.int16)
                    else:
                        skip = -lead
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1, CHANNELS)
                    if skip:
                        cut = min(skip, len(samples))
                        skip -= cut
                        samples = samples[cut:]
                    pending = np.concatenate([pending, samples])
                    while len(pending) >= FRAME_SAMPLES:
                        yield pending[:FRAME_SAMPLES]
                        pending = pending[FRAME_SAMPLES:]
        if len(pending):
            block = np.zeros((FRAME_SAMPLES, CHANNELS), np.int16)
            block[: len(pending)] = pending
            yield block

    def _next(self) -> Pcm | None:
        assert self._blocks is not None
        try:
            return next(self._blocks)
        except StopIteration:
            return None
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(
                f"cannot decode the {self.codec_name} audio of {self.path}: {exc}") from exc

    def read(self) -> Pcm | None:
        """The next block; None at the end of the track.

        Raises:
            AudioDecodeError: the track stopped decoding.
        """
        if self._pending is not None:
            block, self._pending = self._pending, None
            return block
        return self._next()

    def rewind(self) -> None:
        """Start the track again (reopened, as the video source does)."""
        self._pending = None
        self._open()

    def seek(self, position_s: float) -> None:
        """Go on from ``position_s`` into the file (on the picture's time line).

        Raises:
            AudioDecodeError: the file cannot be reopened or decoded there.
        """
        self._pending = None
        try:
            self._open(max(0.0, position_s))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(f"cannot seek the audio of {self.path}: {exc}") from exc

    def close(self) -> None:
        """Release the file. Idempotent."""
        if self._container is not None:
            self._container.close()
            self._container = None


def _start_s(stream: Any) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


class MicSource:
    """A microphone through PortAudio (sounddevice). Mono devices are duplicated to
    both channels.

    Args:
        device: a PortAudio device name or index (None: the system default input).

    Raises:
        MediaError: PortAudio is missing, or the device does not exist or cannot open.
    """

    paced = False

    def __init__(self, device: str | int | None = None) -> None:
        sd = import_sounddevice(device)
        try:
            info = sd.query_devices(device, "input")
            channels = min(CHANNELS, int(info["max_input_channels"]))
            self._stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=channels,
                                          dtype="int16", blocksize=FRAME_SAMPLES,
                                          device=device, latency="low")
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            name = "the default microphone" if device is None else f"microphone {device!r}"
            raise MediaError(f"cannot open {name}: {exc}") from exc
        self.channels = channels
        self.latency_s = float(self._stream.latency)
        self.captured_at = time.time()  # of the block read last
        self._closed = False

    def read(self) -> Pcm:
        """The next 20 ms from the device (blocks until it has them).

        Raises:
            MediaError: the device stopped (unplugged).
        """
        sd = import_sounddevice()
        try:
            data, _overflowed = self._stream.read(FRAME_SAMPLES)
        except sd.PortAudioError as exc:
            raise MediaError(f"microphone failed: {exc}") from exc
        # The block's first sample entered the device one block and the input latency ago.
        self.captured_at = time.time() - FRAME_S - self.latency_s
        block = np.asarray(data, np.int16).reshape(-1, self.channels)
        if self.channels == 1:
            block = np.repeat(block, CHANNELS, axis=1)
        return block

    def rewind(self) -> None:
        """Nothing to rewind in a live device."""

    def seek(self, position_s: float) -> None:
        """A live device has no position."""

    def close(self) -> None:
        """Stop and release the device. Idempotent."""
        if not self._closed:
            self._closed = True
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:  # a vanished device must not block shutdown
                log.debug("closing the microphone failed", exc_info=True)


def import_sounddevice(device: str | int | None = None) -> Any:
    """sounddevice, or a MediaError saying what to install (it needs PortAudio).

    Args:
        device: the device about to be opened. PortAudio lists devices once, when it
            starts; a named device that appeared since (a sound server started after
            this process first touched audio) is only found after a re-scan.
    """
    try:
        import sounddevice
    except OSError as exc:  # the module loads libportaudio when imported
        raise MediaError(
            f"audio devices need PortAudio ({exc}); on Debian/Ubuntu: "
            "apt-get install libportaudio2") from exc
    if isinstance(device, str) and not _has_device(sounddevice, device):
        # sounddevice documents _terminate/_initialize as the way to re-scan.
        sounddevice._terminate()
        sounddevice._initialize()
    return sounddevice


def _has_device(sd: Any, name: str) -> bool:
    try:
        sd.query_devices(name)
    except ValueError:
        return False
    return True
