"""What a user would pick instead of Treecast, rebuilt small enough to benchmark against.

These are yardsticks for ``bench.bench_compare``, not products: each is as short as a
faithful rebuild allows, bounded where a hostile input could hurt the machine running
the benchmark, and nothing outside ``bench/`` imports them.

* ``client_server``: the original course report's design: a central server receives
  the streamer's JPEG frames as base64 inside JSON lines over TCP, re-encodes them for
  each viewer's resolution and sends every frame to every viewer over TCP.
* ``webrtc``: aiortc (H.264 or VP8 over SRTP, its own jitter buffer and congestion
  control) streaming the same clip from one sender to N receivers.
* ``clip``: the shared source: the generated 720p30 clip and its pacer (real time, drop
  when late), the same file every system streams.
* ``barcode``: a capture timestamp drawn into the picture, for systems that cannot carry
  one beside it (WebRTC).
"""
