"""BGR <-> I420 for H.264: studio-range BT.601 values, averaged chroma, the VUI that
says so, and other encoders' full-range streams decoded with the right colours."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from peer.node.codecs.h264 import H264Decoder, H264Encoder
from peer.node.codecs.yuv import bgr_to_i420, i420_to_bgr

Image = npt.NDArray[np.uint8]


def planes(image: Image) -> tuple[Image, Image, Image]:
    height, width = image.shape[:2]
    flat = bgr_to_i420(image).reshape(-1)
    luma = width * height
    return (flat[:luma].reshape(height, width),
            flat[luma:luma * 5 // 4].reshape(height // 2, width // 2),
            flat[luma * 5 // 4:].reshape(height // 2, width // 2))


def psnr(a: Image, b: Image) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


@pytest.mark.parametrize(("bgr", "yuv"), [
    ((0, 0, 0), (16, 128, 128)),
    ((255, 255, 255), (235, 128, 128)),
    ((0, 0, 255), (81, 90, 240)),  # red (BT.601 table values)
    ((0, 255, 0), (145, 54, 34)),  # green
    ((255, 0, 0), (41, 240, 110)),  # blue
])
def test_flat_colours_have_the_bt601_studio_values(bgr: tuple[int, int, int],
                                                   yuv: tuple[int, int, int]) -> None:
    y, u, v = planes(np.full((4, 6, 3), bgr, np.uint8))
    # Within one level: OpenCV's fixed-point transform rounds 144.55 down.
    assert np.abs(np.array([y[0, 0], u[0, 0], v[0, 0]], int) - yuv).max() <= 1
    assert y.shape == (4, 6) and u.shape == v.shape == (2, 3)
    assert len({int(x) for x in y.ravel()}) == 1


def test_chroma_is_the_mean_of_each_2x2_block() -> None:
    # Columns alternate red and blue: every 2x2 block holds two of each, so its chroma
    # is the mean of red's and blue's, not the colour of one of its pixels.
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, 0::2] = (0, 0, 255)
    image[:, 1::2] = (255, 0, 0)
    _, u, v = planes(image)
    assert np.all(u == round((90 + 240) / 2)) and np.all(v == round((240 + 110) / 2))


def test_round_trip_of_fine_colour_detail_beats_opencvs_own_conversion() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (3, 3), 0)  # detail at the scale of a 2x2 block
    ours = psnr(i420_to_bgr(bgr_to_i420(image)), image)
    opencv = psnr(cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420),
                               cv2.COLOR_YUV2BGR_I420), image)
    assert ours > opencv + 1.0


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even sides"):
        bgr_to_i420(np.zeros((5, 4, 3), np.uint8))


def test_the_stream_says_studio_range_bt601() -> None:
    data, _ = H264Encoder(64, 64, 30.0, 400_000).encode(np.full((64, 64, 3), 90, np.uint8))
    frame = av.CodecContext.create("h264", "r").decode(av.Packet(data))[0]
    assert frame.color_range == 1  # MPEG (studio)
    assert frame.colorspace == 6  # SMPTE 170M, i.e. BT.601


def full_range_stream(image: Image, frames: int = 3) -> list[bytes]:
    """What another encoder might send: libx264 fed full-range planes by swscale."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height = image.shape[1], image.shape[0]
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, 30)
    context.color_range = 2  # JPEG (full)
    context.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "10"}
    context.open()
    out = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(
            format="yuv420p", dst_color_range="JPEG")
        frame.color_range = 2
        frame.pts = index
        out += [bytes(p) for p in context.encode(frame)]
    out += [bytes(p) for p in context.encode(None)]
    return out


def test_a_full_range_stream_from_another_encoder_keeps_its_colours() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32] = (40, 120, 200)
    image[:, 32:] = (220, 60, 30)
    decoder = H264Decoder()
    pictures = [decoder.decode(data, 64, 64) for data in full_range_stream(image)]
    assert pictures and all(p is not None for p in pictures)
    # Read as studio range, (40, 120, 200) would come out stretched by 255/219.
    assert all(psnr(p.image, image) > 35 for p in pictures if p is not None)
