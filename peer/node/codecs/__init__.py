"""Video codecs for the layers: H.264 (PyAV/libx264, the default) and MJPEG.

``base`` names the codecs and the shapes every codec shares; ``h264`` and ``mjpeg``
hold one encoder and one decoder each; ``annexb`` reads H.264 bitstreams without
decoding them (structure, keyframes, picture size); ``bank`` makes the layers of a
stream (the streamer's encoders and a relay's transcoder) and ``keyframes`` decides
when a producer forces a keyframe.
"""
