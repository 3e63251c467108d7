"""What printing and bulk scanning do to a page: toner, skew, shift, scale, pages fed upside down,
blur, dust, streaks, sensor noise, and the 1-bit threshold of G4 output. Blank backs (duplex) and
a page of another document are made here too. Pure functions; randomness from a passed Generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from simulate.ink import px_per_mm
from simulate.profiles import ScanRates

PRINT_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
G4_THRESHOLD = 150
NOTICE = ("各位家长：根据社会保障卡申领工作安排，请于本周五前将申领登记表交回班主任。表中预填信息如有错误，"
          "请在更正栏填写并粘贴身份证或户口簿复印件。未满十六周岁的学生须由监护人填写代理人信息并签名。"
          "照片须为近期一寸白底免冠彩色照片。学校将统一收集后交合作银行办理。感谢您的配合与支持。")


@dataclass(frozen=True)
class PageScan:
    """How one page went through the scanner."""

    dpi: int
    rotation: int  # 0 or 180 (fed upside down)
    skew: float  # degrees, counter-clockwise
    shift_mm: tuple[float, float]
    scale: float
    noise: float
    blur: float
    specks: int
    streak: bool


def sample_scan(rng: np.random.Generator, r: ScanRates, dpi: int) -> PageScan:
    return PageScan(
        dpi=dpi, rotation=180 if rng.random() < r.upside_down else 0,
        skew=round(float(rng.uniform(-1, 1) * r.skew_max_deg), 3),
        shift_mm=(round(float(rng.uniform(-1, 1) * r.shift_mm), 2), round(float(rng.uniform(-1, 1) * r.shift_mm), 2)),
        scale=round(float(1 + rng.uniform(-1, 1) * r.scale_jitter), 4),
        noise=float(rng.uniform(*r.noise)), blur=float(rng.uniform(0, r.blur)),
        specks=int(rng.poisson(r.specks)) if r.specks else 0, streak=bool(rng.random() < r.streak))


def toner(gray: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Printer toner on the pre-printed page (grey, or BGR for a colour print): 'faint' (washed
    out, with a lighter band) or 'dark'."""
    if kind == "faint":
        g = gray.astype(np.float32)
        fade = np.float32(rng.uniform(0.35, 0.55))
        band = np.ones(g.shape[1], np.float32)
        x0 = int(rng.integers(0, g.shape[1] // 2))
        band[x0:x0 + g.shape[1] // 4] = 0.7  # a streak of low toner down the page
        band = band[:, None] if g.ndim == 3 else band
        return (255 - (255 - g) * fade * band).astype(np.uint8)
    if kind == "dark":
        g = cv2.erode(gray, np.ones((2, 2), np.uint8))
        return (g.astype(np.float32) * 0.8).astype(np.uint8)
    return gray


def _matrix(s: PageScan, w: int, h: int) -> np.ndarray:
    k = px_per_mm(s.dpi)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), s.skew + s.rotation, s.scale)
    m[0, 2] += s.shift_mm[0] * k
    m[1, 2] += s.shift_mm[1] * k
    return m


def scan_page(img: np.ndarray, s: PageScan, rng: np.random.Generator) -> np.ndarray:
    """The scanner's view of a page (same size and channels as `img`)."""
    h, w = img.shape[:2]
    border = (246, 246, 246) if img.ndim == 3 else 246
    if s.skew or s.rotation or s.shift_mm != (0.0, 0.0) or s.scale != 1.0:
        img = cv2.warpAffine(img, _matrix(s, w, h), (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    if s.blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), s.blur)
    for _ in range(s.specks):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        c = int(rng.integers(20, 140))
        cv2.circle(img, (x, y), int(rng.integers(1, 4)), (c, c, c) if img.ndim == 3 else c, -1)
    if s.streak:
        x = int(rng.integers(w // 10, w - w // 10))
        c = int(rng.integers(90, 190))
        cv2.line(img, (x, 0), (x + int(rng.integers(-3, 4)), h), (c, c, c) if img.ndim == 3 else c,
                 int(rng.integers(1, 4)))
    if s.noise > 0.2:
        noise = np.empty((h, w), np.int16)
        cv2.setRNGSeed(int(rng.integers(1 << 30)))
        cv2.randn(noise, 0.0, s.noise)
        if img.ndim == 3:
            noise = cv2.merge([noise, noise, noise])
        img = cv2.add(img, noise, dtype=cv2.CV_8U)
    return img


def to_mode(img: np.ndarray, mode: str) -> np.ndarray:
    """'color' keeps BGR, 'gray' gives one channel, 'bilevel' a bool array (True = white)."""
    if mode == "color":
        return img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    return gray >= G4_THRESHOLD if mode == "bilevel" else gray


def blank_back(rng: np.random.Generator, front: np.ndarray, near_blank: float) -> tuple[np.ndarray, bool]:
    """The back of a sheet (gray, size of `front`): paper, and sometimes the front showing
    through (mirrored, very faint), a pencil dot or a page number. Returns (image, near_blank)."""
    h, w = front.shape[:2]
    paper = int(rng.integers(238, 252))
    near = bool(rng.random() < near_blank)
    if not near:
        return np.full((h, w), paper, np.uint8), False
    small = cv2.resize(front if front.ndim == 2 else cv2.cvtColor(front, cv2.COLOR_BGR2GRAY),
                       (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    ghost = cv2.GaussianBlur(small[:, ::-1].astype(np.float32), (0, 0), 2.0)
    ghost = cv2.resize(ghost, (w, h), interpolation=cv2.INTER_LINEAR)
    back = paper - (255 - ghost) * rng.uniform(0.03, 0.07)
    img = np.clip(back, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        k = px_per_mm(300) * w / 2480
        cv2.putText(img, str(int(rng.integers(1, 9))), (w // 2, int(h - 12 * k)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.05 * k, 120, max(1, int(0.1 * k)), cv2.LINE_AA)
    return img, True


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(PRINT_FONT, size)


def foreign_page(rng: np.random.Generator, w: int, h: int, dpi: int) -> np.ndarray:
    """A page of another document (a school notice, sometimes with someone else's QR code)."""
    k = px_per_mm(dpi)
    im = Image.new("L", (w, h), 250)
    d = ImageDraw.Draw(im)
    d.text((w / 2, 25 * k), "关于做好学生社会保障卡申领工作的通知", fill=20, font=_font(int(6 * k)), anchor="mm")
    body, size = _font(int(4 * k)), 4 * k
    per_line = int((w - 50 * k) / size)
    text = NOTICE * int(rng.integers(2, 4))
    y = 45 * k
    for i in range(0, len(text), per_line):
        d.text((25 * k, y), text[i:i + per_line], fill=30, font=body)
        y += size * 1.8
        if y > h - 60 * k:
            break
    for row in range(int(rng.integers(3, 8))):  # a small table
        yy = y + 10 * k + row * 8 * k
        d.line((25 * k, yy, w - 25 * k, yy), fill=60, width=max(1, int(0.3 * k)))
    img = np.asarray(im).copy()
    if rng.random() < 0.5:
        qr = zxingcpp.create_barcode(f"https://jw.example.edu.cn/n/{int(rng.integers(1e6))}",
                                     zxingcpp.BarcodeFormat.QRCode)
        q = np.asarray(qr.to_image(scale=max(1, int(0.6 * k))))
        x0, y0 = int(w - 40 * k), int(h - 45 * k)
        img[y0:y0 + q.shape[0], x0:x0 + q.shape[1]] = q[: h - y0, : w - x0]
    return img
