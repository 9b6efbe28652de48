"""H.264 encoder/decoder, the Annex B reader, keyframe throttling and the encoder bank."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.node.codec import CodecError
from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec, parse_codec
from peer.node.codecs.decoders import make_decoder
from peer.node.codecs.h264 import H264Decoder, H264Encoder, layer_bitrate
from peer.node.codecs.keyframes import KeyframeThrottle
from peer.node.codecs.mjpeg import MjpegDecoder
from protocol.h264 import MAX_NALS_PER_FRAME, MAX_SPS_BYTES, parse_access_unit, sps_picture_size
from protocol.limits import MAX_DIMENSION_PX

Image = npt.NDArray[np.uint8]


def scene(width: int, height: int, index: int, noise: int = 0, seed: int = 0) -> Image:
    """A gradient with a moving box and optional sensor noise: compresses like video."""
    x = np.linspace(0, 200, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 200, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = x.astype(np.uint8)
    image[..., 1] = y.astype(np.uint8)
    image[..., 2] = ((x + y) / 2).astype(np.uint8)
    left = (index * 7) % (width - height // 4)
    cv2.rectangle(image, (left, height // 3), (left + height // 4, height // 3 + height // 4),
                  (255, 255, 255), -1)
    if noise:
        rng = np.random.default_rng(seed + index)
        image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    return image


def psnr(a: Image, b: Image) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def encoded_stream(width: int = 320, height: int = 180,
                   frames: int = 6) -> list[tuple[bytes, bool]]:
    encoder = H264Encoder(width, height, 30.0, 400_000)
    return [encoder.encode(scene(width, height, i)) for i in range(frames)]


def test_round_trip_first_frame_is_keyframe() -> None:
    encoder, decoder = H264Encoder(320, 180, 30.0, 400_000), H264Decoder()
    for i in range(8):
        image = scene(320, 180, i)
        data, keyframe = encoder.encode(image)
        assert keyframe == (i == 0)
        assert parse_access_unit(data).keyframe == keyframe
        picture = decoder.decode(data, 320, 180)
        assert picture is not None and picture.keyframe == keyframe
        assert picture.image.shape == (180, 320, 3)
        assert psnr(picture.image, image) > 30


def test_forced_keyframe_carries_headers_and_size() -> None:
    encoder = H264Encoder(640, 360, 30.0, 600_000)
    encoder.encode(scene(640, 360, 0))
    data, keyframe = encoder.encode(scene(640, 360, 1))
    assert not keyframe and parse_access_unit(data).size is None
    data, keyframe = encoder.encode(scene(640, 360, 2), keyframe=True)
    unit = parse_access_unit(data)
    assert keyframe and unit.keyframe and unit.size == (640, 360)
    assert unit.nal_types[:2] == (7, 8)  # SPS and PPS in band: a new child starts here


def test_decoder_waits_for_keyframe_then_starts() -> None:
    stream = encoded_stream()
    decoder = H264Decoder()
    assert decoder.decode(stream[1][0], 320, 180) is None  # joined mid-GOP: nothing yet
    assert not decoder.started
    encoder = H264Encoder(320, 180, 30.0, 400_000)
    key, _ = encoder.encode(scene(320, 180, 0))
    picture = decoder.decode(key, 320, 180)
    assert picture is not None and picture.keyframe and decoder.started


@pytest.mark.parametrize("garbage", [
    b"",
    b"garbage" * 20,
    b"\xff\xd8\xff\xe0 a JPEG is not H.264",
    b"\x00\x00\x01",  # a start code and nothing after
    b"\x00\x00\x01\x85\x00\x00",  # forbidden bit
    b"\x00\x00\x01\x18abc",  # NAL type 24 (an RTP aggregation type)
    b"\x00\x00\x01\x67",  # an SPS cut after its header
    b"\x00\x00\x01\x68\xce\x38\x80",  # a PPS alone: no picture
])
def test_garbage_is_a_codec_error(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        H264Decoder().decode(garbage, 320, 180)


def test_corrupt_slice_after_a_good_start_is_an_error_and_resets() -> None:
    stream = encoded_stream(frames=4)
    decoder = H264Decoder()
    assert decoder.decode(stream[0][0], 320, 180) is not None
    data = stream[1][0]
    rng = np.random.default_rng(1)
    corrupt = data[:8] + rng.integers(0, 255, max(64, len(data)), dtype=np.uint8).tobytes()
    corrupt = corrupt.replace(b"\x00\x00\x01", b"\x00\x01\x01")
    with pytest.raises(CodecError, match=r"corrupt H\.264|pictures|decoded"):
        decoder.decode(corrupt, 320, 180)
    assert not decoder.started  # the next frame it accepts is a keyframe
    assert decoder.decode(stream[2][0], 320, 180) is None


def test_size_is_checked_against_metadata_before_decoding() -> None:
    key = encoded_stream(frames=1)[0][0]
    with pytest.raises(CodecError, match=r"is 320x180 but its metadata says 640x360"):
        H264Decoder().decode(key, 640, 360)


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def nal(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def baseline_sps(width_mbs: int, height_mbs: int, crop_bottom: int = 0) -> bytes:
    w = BitWriter()
    w.u(8, 0x67)  # NAL header: SPS
    w.u(8, 66)  # baseline profile
    w.u(16, 30)  # constraints, level 3.0
    w.ue(0)  # sps id
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(2)  # poc type 2
    w.ue(1)  # refs
    w.u(1, 0)
    w.ue(width_mbs - 1)
    w.ue(height_mbs - 1)
    w.u(1, 1)  # frame_mbs_only
    w.u(1, 1)  # direct_8x8
    w.u(1, 1 if crop_bottom else 0)
    if crop_bottom:
        for value in (0, 0, 0, crop_bottom):
            w.ue(value)
    w.u(1, 0)  # no VUI
    return w.nal()


def test_sps_size_with_cropping() -> None:
    assert sps_picture_size(baseline_sps(120, 68, crop_bottom=4)) == (1920, 1080)


def test_sps_size_limit() -> None:
    limit_mbs = MAX_DIMENSION_PX // 16
    assert sps_picture_size(baseline_sps(limit_mbs, 2)) == (MAX_DIMENSION_PX, 32)
    with pytest.raises(ValueError, match="out of range"):
        sps_picture_size(baseline_sps(limit_mbs + 1, 2))
    with pytest.raises(ValueError, match="at most"):
        sps_picture_size(b"\x67" + b"\x42" * MAX_SPS_BYTES)


def test_nal_count_limit() -> None:
    slice_nal = b"\x00\x00\x01\x41\x9a"
    parse_access_unit(slice_nal * MAX_NALS_PER_FRAME)
    with pytest.raises(ValueError, match="NAL units"):
        parse_access_unit(slice_nal * (MAX_NALS_PER_FRAME + 1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_codec_error(data: bytes) -> None:
    decoder = H264Decoder()
    try:
        decoder.decode(b"\x00\x00\x01\x65" + data, 320, 180)
        decoder.decode(data, 320, 180)
    except CodecError:
        pass


def test_bitrate_ladder_scales_with_frame_rate() -> None:
    assert layer_bitrate(720, 30) == 2_500_000
    assert layer_bitrate(1080, 60) == 9_000_000
    assert layer_bitrate(360, 15) == 300_000
    assert layer_bitrate(480, 30) == 1_000_000
    assert layer_bitrate(200, 30) == 600_000  # below the ladder: the lowest step


def test_rate_control_holds_the_cap_on_noisy_video() -> None:
    # Sensor noise is the worst case for a codec: without the cap it would use several
    # times the budget.
    cap = layer_bitrate(360, 30)
    encoder = H264Encoder(640, 360, 30.0, cap)
    total = sum(len(encoder.encode(scene(640, 360, i, noise=12))[0]) for i in range(60))
    bits_per_s = total * 8 * 30 / 60
    assert bits_per_s <= cap * 1.15, bits_per_s


def test_throttle_serves_one_keyframe_per_interval_and_keeps_late_requests() -> None:
    throttle = KeyframeThrottle(min_interval_s=0.5)
    assert throttle.take({720}, 0.0) == frozenset()
    throttle.request(720)
    throttle.request(720)
    assert throttle.take({360, 720}, 1.0) == {720}
    throttle.request(720)  # inside the interval: kept, not lost
    assert throttle.take({720}, 1.2) == frozenset()
    assert throttle.pending(720)
    assert throttle.take({720}, 1.5) == {720}
    assert throttle.forced == 2 and throttle.requests == 3


def test_throttle_storm_costs_two_keyframes_a_second() -> None:
    throttle = KeyframeThrottle(min_interval_s=0.5)
    forced = 0
    for frame in range(300):  # an attacker asks before every frame for 10 s at 30 fps
        throttle.request(720)
        forced += len(throttle.take({720}, frame / 30))
    assert forced == 20


def test_throttle_natural_keyframe_serves_requests() -> None:
    throttle = KeyframeThrottle()
    throttle.request(480)
    throttle.keyframe_made(480, 3.0)
    assert not throttle.pending(480)
    throttle.request(480)
    assert throttle.take({480}, 3.1) == frozenset()  # a keyframe just went out


def test_bank_shares_a_size_and_forces_keyframes_per_layer() -> None:
    bank = EncoderBank(VideoCodec.H264, 30.0)
    first = bank.encode(scene(1280, 720, 0), [360, 720, 1080])
    assert {f.layer: (f.width, f.height) for f in first.values()} == {
        360: (640, 360), 720: (1280, 720), 1080: (1280, 720)}
    assert first[720].data is first[1080].data  # one encoding for the shared size
    assert all(f.keyframe and f.codec is VideoCodec.H264 for f in first.values())
    second = bank.encode(scene(1280, 720, 1), [360, 720], keyframes={360}, seq=7)
    assert second[360].keyframe and not second[720].keyframe
    assert second[720].prev == -1  # the first call had no sequence number
    assert bank.encode(scene(1280, 720, 1), [360, 720], seq=9)[720].prev == 7
    # 360 unwanted for a frame: its encoder goes, and a new one starts with a keyframe.
    bank.encode(scene(1280, 720, 2), [720], seq=10)
    again = bank.encode(scene(1280, 720, 3), [360, 720], seq=11)
    assert again[360].keyframe and again[360].prev == -1 and again[720].prev == 10
    decoder = make_decoder(VideoCodec.H264)
    assert decoder.decode(first[360].data, 640, 360) is not None
    bank.close()


def test_mjpeg_bank_every_frame_is_a_keyframe() -> None:
    bank = EncoderBank(VideoCodec.MJPEG, 30.0)
    frames = bank.encode(scene(640, 360, 0), [360])
    frame = frames[360]
    assert frame.keyframe and frame.codec is VideoCodec.MJPEG
    picture = MjpegDecoder().decode(frame.data, 640, 360)
    assert picture.keyframe and psnr(picture.image, scene(640, 360, 0)) > 30
    with pytest.raises(CodecError, match="metadata says 320x180"):
        MjpegDecoder().decode(frame.data, 320, 180)


def test_unknown_codec_name_is_refused_clearly() -> None:
    assert parse_codec("h264") is VideoCodec.H264
    with pytest.raises(CodecError, match=r"unsupported video codec 'vp9'.*h264, mjpeg"):
        parse_codec("vp9")
