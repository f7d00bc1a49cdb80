"""PNG bar and line charts with the standard library only (zlib + struct), so `make bench` needs
no plotting package and CI installs nothing extra.  A 5x7 bitmap font covers the characters the
labels use; anything else is drawn as a blank."""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Sequence

_FONT = {  # 5 columns x 7 rows, one string of 7 row-bitmasks (bit 4 = leftmost column)
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12), ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0), "+": (0, 4, 4, 31, 4, 4, 0), "/": (1, 1, 2, 4, 8, 16, 16),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8), ":": (0, 12, 12, 0, 12, 12, 0),
    "%": (24, 25, 2, 4, 8, 19, 3), "=": (0, 0, 31, 0, 31, 0, 0), "x": (0, 0, 17, 10, 4, 10, 17),
    " ": (0,) * 7, "_": (0, 0, 0, 0, 0, 0, 31), ">": (8, 4, 2, 1, 2, 4, 8), "<": (2, 4, 8, 16, 8, 4, 2),
}
_LETTERS = {
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 10, 4, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
}
_FONT.update(_LETTERS)

PALETTE = [(52, 101, 164), (204, 102, 0), (78, 154, 6), (117, 80, 123), (164, 0, 0), (85, 87, 83)]
WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (30, 30, 30), (150, 150, 150), (225, 225, 225)


class Canvas:
    def __init__(self, width: int, height: int):
        self.w, self.h = width, height
        self.px = bytearray(bytes(WHITE) * (width * height))

    def set(self, x: int, y: int, color) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color) -> None:
        x0, x1 = sorted((max(0, int(x0)), min(self.w, int(x1))))
        y0, y1 = sorted((max(0, int(y0)), min(self.h, int(y1))))
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def line(self, x0, y0, x1, y1, color) -> None:
        steps = int(max(abs(x1 - x0), abs(y1 - y0), 1))
        for s in range(steps + 1):
            t = s / steps
            x, y = round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t)
            self.rect(x - 1, y - 1, x + 1, y + 1, color)

    def text(self, x: int, y: int, s: str, color=BLACK, scale: int = 1) -> None:
        for ch in s.upper():
            rows = _FONT.get(ch, _FONT[" "])
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (1 << (4 - c)):
                        self.rect(x + c * scale, y + r * scale, x + (c + 1) * scale, y + (r + 1) * scale, color)
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def text_width(s: str, scale: int = 1) -> int:
    return len(s) * 6 * scale


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "N/A"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def bar_chart(path: Path, title: str, groups: Sequence[str], series: dict[str, Sequence[float]],
              unit: str = "", width: int = 760, height: int = 380) -> Path:
    """Grouped bars: one group per label in `groups`, one bar per series in each group."""
    c = Canvas(width, height)
    c.text(12, 10, title, scale=2)
    c.text(12, 32, unit, GREY)
    left, right, top, bottom = 70, width - 20, 60, height - 60
    values = [v for vs in series.values() for v in vs if v is not None and not math.isnan(v)]
    vmax = max(values) * 1.15 if values and max(values) > 0 else 1.0
    for k in range(5):
        y = bottom - (bottom - top) * k / 4
        c.rect(left, y, right, y + 1, LIGHT)
        label = _fmt(vmax * k / 4)
        c.text(left - 6 - text_width(label), int(y) - 3, label, GREY)
    c.rect(left, bottom, right, bottom + 1, BLACK)
    nser = max(1, len(series))
    gw = (right - left) / max(1, len(groups))
    bw = max(4, int(gw * 0.8 / nser))
    for gi, g in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        for si, (name, vs) in enumerate(series.items()):
            v = vs[gi] if gi < len(vs) else math.nan
            x0 = int(gx + si * bw)
            if v is not None and not math.isnan(v):
                y = bottom - (bottom - top) * v / vmax
                c.rect(x0, y, x0 + bw - 2, bottom, PALETTE[si % len(PALETTE)])
                label = _fmt(v)
                c.text(x0 + max(0, (bw - text_width(label)) // 2), int(y) - 10, label)
        c.text(int(gx), bottom + 8, g)
    lx = left
    for si, name in enumerate(series):
        c.rect(lx, height - 22, lx + 10, height - 12, PALETTE[si % len(PALETTE)])
        c.text(lx + 14, height - 21, name)
        lx += 30 + text_width(name)
    path.write_bytes(c.png())
    return path


def line_chart(path: Path, title: str, points: Sequence[tuple[float, float]], xlabel: str, ylabel: str,
               width: int = 760, height: int = 380) -> Path:
    c = Canvas(width, height)
    c.text(12, 10, title, scale=2)
    c.text(12, 32, ylabel, GREY)
    left, right, top, bottom = 70, width - 20, 60, height - 50
    c.rect(left, bottom, right, bottom + 1, BLACK)
    c.rect(left, top, left + 1, bottom, BLACK)
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        xmax = max(xs) or 1.0
        ymin, ymax = 0.0, (max(ys) * 1.15) or 1.0
        for k in range(5):
            y = bottom - (bottom - top) * k / 4
            c.rect(left, y, right, y + 1, LIGHT)
            label = _fmt(ymin + (ymax - ymin) * k / 4)
            c.text(left - 6 - text_width(label), int(y) - 3, label, GREY)
        for k in range(5):
            label = _fmt(xmax * k / 4)
            c.text(int(left + (right - left) * k / 4) - text_width(label) // 2, bottom + 8, label, GREY)
        prev = None
        for x, y in points:
            px = left + (right - left) * x / xmax
            py = bottom - (bottom - top) * (y - ymin) / (ymax - ymin)
            if prev:
                c.line(prev[0], prev[1], px, py, PALETTE[0])
            prev = (px, py)
    c.text(right - text_width(xlabel), height - 20, xlabel, GREY)
    path.write_bytes(c.png())
    return path
