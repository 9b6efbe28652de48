"""JPEG codec, resizing, per-layer encoding and the relay's transcoder."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.node import codec
from peer.node.codec import (
    CodecError,
    decode_for_display,
    decode_jpeg,
    encode_jpeg,
    encode_layers,
    jpeg_size,
    resize,
    transcode_down,
)
from peer.node.errors import MediaError

Image = npt.NDArray[np.uint8]


def smooth_frame(width: int, height: int) -> Image:
    """Gradients and a few shapes: compresses like a real picture, survives resizing."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = x.astype(np.uint8)
    image[..., 1] = y.astype(np.uint8)
    image[..., 2] = ((x + y) / 2).astype(np.uint8)
    cv2.circle(image, (width // 3, height // 2), height // 4, (255, 255, 255), -1)
    cv2.rectangle(image, (width // 2, height // 4), (width * 3 // 4, height // 2), (0, 0, 0), -1)
    return image


def mean_abs_diff(a: Image, b: Image) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def test_codec_error_is_media_error() -> None:
    assert issubclass(CodecError, MediaError)


def test_round_trip() -> None:
    image = smooth_frame(640, 360)
    jpeg = encode_jpeg(image)
    assert jpeg[:2] == b"\xff\xd8"
    assert jpeg_size(jpeg) == (640, 360)
    decoded = decode_jpeg(jpeg)
    assert decoded.shape == (360, 640, 3) and decoded.dtype == np.uint8
    assert mean_abs_diff(decoded, image) < 3
    assert np.array_equal(decode_for_display(jpeg), decoded)


def test_quality_changes_size() -> None:
    image = smooth_frame(640, 360)
    noise = np.random.default_rng(1).integers(0, 40, image.shape, dtype=np.uint8)
    image = cv2.add(image, noise)
    assert (
        len(encode_jpeg(image, quality=30))
        < len(encode_jpeg(image))
        < len(encode_jpeg(image, quality=95))
    )


def test_grayscale_jpeg_decodes_as_bgr() -> None:
    ok, buffer = cv2.imencode(".jpg", np.full((40, 60), 128, np.uint8))
    assert ok
    assert decode_jpeg(buffer.tobytes()).shape == (40, 60, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"hello world",
        b"\xff\xd8",
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # header cut before the frame header
        b"\xff\xd8\xff\xe0\x00\x01",  # segment length below 2
        b"\xff\xd8\x00\x00\x00\x00",  # no marker where one must be
        b"\xff\xd8\xff\xda\x00\x08abcdef",  # scan before any frame header
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # a PNG is not a JPEG, even if OpenCV reads it
    ],
)
def test_decode_garbage_raises(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_jpeg(data)


def test_decode_truncated_raises() -> None:
    image = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    jpeg = encode_jpeg(image)
    with pytest.raises(CodecError):
        decode_jpeg(jpeg[: len(jpeg) // 3])


def test_png_rejected_even_though_opencv_reads_it() -> None:
    ok, buffer = cv2.imencode(".png", smooth_frame(32, 32))
    assert ok
    with pytest.raises(CodecError, match="not a JPEG"):
        decode_jpeg(buffer.tobytes())


def _with_declared_size(jpeg: bytes, width: int, height: int) -> bytes:
    pos = jpeg.index(b"\xff\xc0")
    patched = bytearray(jpeg)
    patched[pos + 5 : pos + 7] = height.to_bytes(2, "big")
    patched[pos + 7 : pos + 9] = width.to_bytes(2, "big")
    return bytes(patched)


@pytest.mark.parametrize(("width", "height"), [(65535, 65535), (9000, 100), (100, 0)])
def test_absurd_declared_size_rejected_before_decoding(width: int, height: int) -> None:
    jpeg = _with_declared_size(encode_jpeg(smooth_frame(64, 48)), width, height)
    with pytest.raises(CodecError, match="out of range"):
        decode_jpeg(jpeg)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=512))
def test_decode_arbitrary_bytes_only_raises_codec_error(data: bytes) -> None:
    for candidate in (data, b"\xff\xd8" + data, b"\xff\xd8\xff\xc0" + data):
        try:
            image = decode_jpeg(candidate)
        except CodecError:
            continue
        assert image.ndim == 3 and image.shape[2] == 3


def test_encode_rejects_empty_picture() -> None:
    with pytest.raises(CodecError):
        encode_jpeg(np.zeros((0, 0, 3), np.uint8))


def test_resize() -> None:
    image = smooth_frame(640, 360)
    assert resize(image, 640, 360) is image
    small = resize(image, 320, 180)
    assert small.shape == (180, 320, 3)
    assert mean_abs_diff(cv2.resize(small, (640, 360)), image) < 6
    assert resize(image, 1280, 720).shape == (720, 1280, 3)
    with pytest.raises(ValueError):
        resize(image, 0, 10)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((1920, 1080), (640, 360)),
        ((1920, 1080), (854, 480)),
        ((1920, 1080), (1280, 720)),
        ((1281, 721), (640, 360)),
        ((3840, 2160), (854, 480)),
    ],
)
def test_resize_shrink_close_to_area_average(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    image = smooth_frame(*source)
    noise = np.random.default_rng(3).integers(0, 30, image.shape, dtype=np.uint8)
    image = cv2.add(image, noise)
    reference = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    result = resize(image, *target)
    assert result.shape == (target[1], target[0], 3) and result.dtype == np.uint8
    assert cv2.PSNR(result, reference) > 33


def test_encode_layers_only_requested() -> None:
    image = smooth_frame(1920, 1080)
    layers = encode_layers(image, [720, 360, 360])
    assert set(layers) == {360, 720}
    for layer, (w, h) in {360: (640, 360), 720: (1280, 720)}.items():
        encoded = layers[layer]
        assert (encoded.layer, encoded.width, encoded.height) == (layer, w, h)
        decoded = decode_jpeg(encoded.jpeg)
        assert decoded.shape == (h, w, 3)
        assert mean_abs_diff(decoded, cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)) < 3
    assert encode_layers(image, []) == {}


def test_encode_layers_small_source_shares_encoding() -> None:
    image = smooth_frame(1280, 720)
    layers = encode_layers(image, [1080, 720, 480])
    assert (layers[1080].width, layers[1080].height) == (1280, 720)
    assert layers[1080].jpeg is layers[720].jpeg
    assert (layers[480].width, layers[480].height) == (854, 480)


def test_transcode_down_sizes_and_content() -> None:
    image = smooth_frame(1920, 1080)
    jpeg = encode_jpeg(image)
    out = transcode_down(jpeg, 1920, 1080, [720, 480, 360])
    assert {k: (v.width, v.height) for k, v in out.items()} == {
        720: (1280, 720),
        480: (854, 480),
        360: (640, 360),
    }
    for encoded in out.values():
        w, h = encoded.width, encoded.height
        decoded = decode_jpeg(encoded.jpeg)
        assert decoded.shape == (h, w, 3)
        assert mean_abs_diff(decoded, cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)) < 4


def test_transcode_down_passes_own_size_through_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jpeg = encode_jpeg(smooth_frame(1280, 720))

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded a frame it only had to forward")

    monkeypatch.setattr(codec.cv2, "imdecode", no_decode)
    out = transcode_down(jpeg, 1280, 720, [720, 1080])
    assert out[720].jpeg is jpeg and out[1080].jpeg is jpeg
    assert (out[1080].width, out[1080].height) == (1280, 720)


@pytest.mark.parametrize(
    ("source", "layers", "mode"),
    [
        ((1920, 1080), [360], cv2.IMREAD_REDUCED_COLOR_2),  # 360*4 > 1080: only 1/2
        ((1920, 1080), [480, 360], cv2.IMREAD_REDUCED_COLOR_2),
        ((1920, 1080), [720, 360], cv2.IMREAD_COLOR),  # 720 needs the full decode
        ((1280, 720), [360], cv2.IMREAD_REDUCED_COLOR_2),  # exactly half: no resize at all
        ((2880, 1440), [360], cv2.IMREAD_REDUCED_COLOR_4),
        ((3840, 2880), [360], cv2.IMREAD_REDUCED_COLOR_8),
    ],
)
def test_transcode_down_uses_reduced_decode(
    monkeypatch: pytest.MonkeyPatch, source: tuple[int, int], layers: list[int], mode: int
) -> None:
    jpeg = encode_jpeg(smooth_frame(*source))
    modes: list[int] = []
    real_imdecode = cv2.imdecode

    def spy(buffer: object, flags: int) -> object:
        modes.append(flags)
        return real_imdecode(buffer, flags)

    monkeypatch.setattr(codec.cv2, "imdecode", spy)
    out = transcode_down(jpeg, *source, layers)
    assert modes == [mode]  # decoded exactly once
    for layer in layers:
        assert decode_jpeg(out[layer].jpeg).shape[0] == layer


def test_transcode_down_reuses_a_picture_already_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = smooth_frame(1280, 720)
    jpeg = encode_jpeg(image)
    decoded = decode_jpeg(jpeg)

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded a frame it was given decoded")

    monkeypatch.setattr(codec.cv2, "imdecode", no_decode)
    out = transcode_down(jpeg, 1280, 720, [480, 360], decoded)
    assert {k: (v.width, v.height) for k, v in out.items()} == {480: (854, 480),
                                                               360: (640, 360)}


def test_transcode_down_rejects_size_mismatch_and_garbage() -> None:
    jpeg = encode_jpeg(smooth_frame(640, 360))
    with pytest.raises(CodecError, match="metadata"):
        transcode_down(jpeg, 1280, 720, [360])
    with pytest.raises(CodecError):
        transcode_down(b"garbage", 1280, 720, [360])
    with pytest.raises(CodecError):
        transcode_down(jpeg[:-2000] if len(jpeg) > 4000 else jpeg[:200], 640, 360, [180])
