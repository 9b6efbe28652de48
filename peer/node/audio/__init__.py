"""Sound: sources, Opus, the jitter buffer / playout clock, and the output device.

Audio travels as its own message kind (``protocol.AudioFrame``): 20 ms Opus packets
stamped with the capture time on the streamer's clock. Relays forward the bytes
untouched; only peers that play or record decode them.
"""
