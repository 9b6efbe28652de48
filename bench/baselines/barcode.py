"""A capture timestamp and sequence number drawn into the top rows of a picture.

WebRTC carries pictures, not our metadata, so the sender paints it: two bands of 64
black-or-white cells across the top of the frame. Band 0 holds the capture time in
microseconds (64 bits); band 1 the sequence number (32 bits) and a CRC-32 of both
(32 bits), so a cell misread after lossy coding is caught instead of giving a wrong
latency. Cells are ``width // 64`` pixels wide and ``BAND_ROWS`` high (20x16 at 720p:
larger than a codec's 16x16 macroblock in one direction, and read at their centres),
which survives aiortc's H.264 and VP8 at their lowest bitrates.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

CELLS = 64
BAND_ROWS = 16
ROWS = 2 * BAND_ROWS  # rows of the picture the code overwrites


def _bits(value: int) -> np.ndarray:
    return np.array([(value >> (CELLS - 1 - i)) & 1 for i in range(CELLS)], np.uint8)


def _value(bits: np.ndarray) -> int:
    out = 0
    for bit in bits:
        out = (out << 1) | int(bit)
    return out


def _crc(micros: int, seq: int) -> int:
    return zlib.crc32(struct.pack("!QI", micros, seq))


def draw(image: np.ndarray, captured_at: float, seq: int) -> None:
    """Paint ``captured_at`` (Unix seconds) and ``seq`` into the top ``ROWS`` rows.

    Args:
        image: a BGR (H, W, 3) or grey (H, W) uint8 picture, at least 64 pixels wide
            and ``ROWS`` high; changed in place.
        captured_at: the capture time.
        seq: the frame's number (taken modulo 2**32).
    """
    micros = round(captured_at * 1e6)
    seq &= 0xFFFFFFFF
    cell = image.shape[1] // CELLS
    for band, value in enumerate((micros, (seq << 32) | _crc(micros, seq))):
        row = np.repeat(_bits(value) * 255, cell).astype(np.uint8)
        top = band * BAND_ROWS
        image[top:top + BAND_ROWS, :CELLS * cell] = (
            row[None, :, None] if image.ndim == 3 else row[None, :])


def read(luma: np.ndarray) -> tuple[float, int] | None:
    """The (capture time, seq) painted by ``draw``, from the picture's luma plane.

    Args:
        luma: the Y plane (H, W) uint8, or any grey rendering of the picture.

    Returns:
        The values, or None when the checksum does not match (not our picture, or a
        cell lost to coding).
    """
    cell = luma.shape[1] // CELLS
    centres = np.arange(CELLS) * cell + cell // 2
    values = []
    for band in range(2):
        middle = band * BAND_ROWS + BAND_ROWS // 2
        samples = luma[middle - 2:middle + 3, centres].astype(np.int32).mean(axis=0)
        values.append(_value(samples > 128))
    micros, tail = values
    seq, crc = tail >> 32, tail & 0xFFFFFFFF
    if _crc(micros, seq) != crc:
        return None
    return micros / 1e6, seq
