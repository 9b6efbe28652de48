"""What a node is told to do with sound (the ``--no-audio``, ``--mic``, ``--audio-out``
family of options)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """Sound settings of one node.

    Attributes:
        enabled: send the source's sound when streaming (``--no-audio`` turns it off).
        track: which audio track of a file (None: the first).
        mic: record a microphone alongside a camera.
        mic_device: PortAudio input name or index (None: the default input).
        play: play received sound on an output device (headless default: off).
        output_device: PortAudio output name or index (None: the default output).
        volume: playback gain, 0..1.
        muted: play silence (the stream keeps being received and recorded).
    """

    enabled: bool = True
    track: int | None = None
    mic: bool = False
    mic_device: str | int | None = None
    play: bool = False
    output_device: str | int | None = None
    volume: float = 1.0
    muted: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.volume <= 1.0:
            raise ValueError("volume must be between 0 and 1")
        if self.track is not None and self.track < 0:
            raise ValueError("audio track must be 0 or more")
