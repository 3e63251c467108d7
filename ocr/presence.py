"""Ink and presence detectors for zones: checkboxes, signatures, attachments, pasted photos.

Each detector returns its decision with a confidence from a logistic on the log distance of the
measured ink from its threshold (so a box far from the threshold is sure, one near it is not).
Printed box lines are removed before measuring, so an empty box reads empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from forms.layout import mm_to_px
from ocr.align import ALIGN_DPI

PX_PER_MM = mm_to_px(1.0, ALIGN_DPI)
SIGNATURE_THR = 0.004
CHECK_THR = 0.07
ATTACH_THR = 0.05
# A pasted copy or photo is what is darker than the paper by PASTED_BELOW_PAPER grey levels (never
# lighter than PASTED_DARK, the threshold on white paper). The page's paper is its PAPER_PERCENTILE
# grey level (`paper_level`: most of a form page is paper). A fixed 200 took the paper of dark or
# dim scans (grey 205-210 with noise, harsh profile) for a pasted copy: 48 of 879 empty copy boxes
# and 10 of 322 empty photo boxes, against none now (true copies >= 0.11 of the box, photos >= 0.29).
PASTED_DARK = 200.0
PASTED_BELOW_PAPER = 50.0
PAPER_PERCENTILE = 75
PHOTO_THR = 0.10
CARD_W, CARD_H = 358, 441


def _decide(ratio: float, thr: float, spread: float = 0.45) -> tuple[bool, float]:
    z = math.log((ratio + 1e-6) / thr) / spread
    p = 1.0 / (1.0 + math.exp(-z))
    return p >= 0.5, round(max(p, 1.0 - p), 4)


def inner(crop: np.ndarray, mm: float = 1.0) -> np.ndarray:
    m = int(round(mm * PX_PER_MM))
    h, w = crop.shape[:2]
    return crop[m:max(m + 1, h - m), m:max(m + 1, w - m)]


def ink_mask(gray: np.ndarray, level: int = 150) -> np.ndarray:
    """Dark pixels minus long straight lines (printed frames) and isolated specks."""
    dark = (gray < level).astype(np.uint8)
    n = max(15, int(6 * PX_PER_MM))
    lines = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1)))
    lines |= cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, n)))
    ink = dark & ~cv2.dilate(lines, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def signature(crop: np.ndarray) -> tuple[bool, float]:
    """Ink inside a signature (or correction) box, printed frame removed."""
    return _decide(float(ink_mask(inner(crop, 1.2)).mean()), SIGNATURE_THR)


def box_ink(crop: np.ndarray) -> float:
    """Share of dark pixels inside a tick box (its frame excluded)."""
    return float((inner(crop, 0.7) < 140).mean())


CHECK_SPREAD = 0.35  # a tick of 2.3x the threshold's ink is sure (0.9); a faint mark or a smudge is doubt


def pick_option(ratios: dict[str, float]) -> tuple[str, float]:
    """The one ticked option ('' for none), with the weakest of the per-box confidences."""
    decided = {k: _decide(r, CHECK_THR, CHECK_SPREAD) for k, r in ratios.items()}
    ticked = [k for k, (on, _) in decided.items() if on]
    conf = min(c for _, c in decided.values())
    if len(ticked) > 1:
        return max(ticked, key=lambda k: ratios[k]), 0.3
    return (ticked[0] if ticked else ""), conf


def paper_level(page: np.ndarray) -> float:
    """The grey level of a page's paper (every 4th pixel's PAPER_PERCENTILE): 253-255 on a good
    scan, about 205 on a dim one."""
    return float(np.percentile(page[::4, ::4], PAPER_PERCENTILE))


def pasted_below(paper: float = 255.0) -> float:
    """Grey levels under this are a pasted copy's or photo's, on paper of grey level `paper`."""
    return min(PASTED_DARK, paper - PASTED_BELOW_PAPER)


def attachment(crop: np.ndarray, paper: float = 255.0) -> tuple[bool, float]:
    """A pasted copy fills much of the area with grey texture and print (on paper of grey level
    `paper`, `paper_level`)."""
    return _decide(float((inner(crop, 1.5) < pasted_below(paper)).mean()), ATTACH_THR, 0.6)


# a photo's background is light when its top corners are at least this light (share of the page's
# paper grey level: a dim scan greys the photo as it greys the paper; harsh 1,000: 29 white
# backgrounds on pages of paper 205-208 read light at 0.5-0.83 against 255)
BG_LIGHT, BG_SPREAD = 0.80, 0.03
# the share of its minimum-area rectangle a photo's dark pixels fill when its background is coloured
# or grey (the simulator's: 0.95-1.0 upright or turned 6 degrees); a white background's person
# fills about 0.6 of it
SOLID = 0.85


@dataclass(frozen=True)
class PhotoFound:
    card: np.ndarray  # 358x441 BGR, white padded
    confidence: float
    light_background: bool
    background_confidence: float
    is_color: bool
    color_confidence: float


def _main_blob(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest area of `mask` once small gaps are closed: its pixels (uint8 0/1) and its
    connected-components stats row (x, y, w, h, area); None for an empty mask."""
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed)
    if n <= 1:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == i).astype(np.uint8), stats[i]


def _to_card(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    k = min(CARD_W / w, CARD_H / h)
    small = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    card = np.full((CARD_H, CARD_W, 3), 255, np.uint8)
    y0, x0 = (CARD_H - small.shape[0]) // 2, (CARD_W - small.shape[1]) // 2
    card[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return card


def _photo_rect(stat: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The pasted photo's own edges: the box of its main blob (`stat`, see `_main_blob`) in a region
    of `shape`, widened to the card's aspect ratio."""
    x0, y0 = int(stat[0]), int(stat[1])
    x1, y1 = x0 + int(stat[2]), y0 + int(stat[3])
    h, w = shape[:2]
    want_w = max(x1 - x0, (y1 - y0) * CARD_W / CARD_H)
    want_h = want_w * CARD_H / CARD_W
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0, x1 = max(0, int(cx - want_w / 2)), min(w, int(cx + want_w / 2))
    y0, y1 = max(0, int(cy - want_h / 2)), min(h, int(cy + want_h / 2))
    return x0, y0, x1, y1


def _top_corners(gray: np.ndarray, blob: np.ndarray, area: int, rect: tuple[int, int, int, int]) -> np.ndarray:
    """The grey levels of the photo's top left and top right corners (an eighth of its height, a
    sixth of its width). Where the photo's dark pixels (`blob` of `area` pixels, see `_main_blob`)
    fill the rectangle they lie in (at least `SOLID`: a coloured or grey background, dark to the
    photo's edges), that rectangle is the photo: it is turned upright and its own corners are
    taken, inset by 4 %, so the paper beside a photo pasted askew is not taken for its background.
    Otherwise (a white background, like the paper) the corners of `rect`, the photo's box in `gray`."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(cv2.findNonZero(blob))
    if area >= SOLID * w * h and min(w, h) >= 16:
        if angle > 45:  # the same rectangle, its sides named the other way round
            angle, w, h = angle - 90, h, w
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        upright = cv2.warpAffine(gray, m, (gray.shape[1], gray.shape[0]), borderValue=255)
        y0, x0 = max(0, int(round(cy - h / 2))), max(0, int(round(cx - w / 2)))
        pic = upright[y0:y0 + int(h), x0:x0 + int(w)]
        ph, pw = pic.shape
        dy, dx = max(1, int(0.04 * ph)), max(1, int(0.04 * pw))
        pic = pic[dy:ph - dy, dx:pw - dx]
    else:
        x0, y0, x1, y1 = rect
        pic = gray[y0:y1, x0:x1]
    ph, pw = pic.shape
    return np.concatenate([pic[: ph // 8, : pw // 6].ravel(), pic[: ph // 8, -pw // 6:].ravel()])


def photo(color: np.ndarray, paper: float = 255.0) -> PhotoFound | None:
    """Find a pasted photo in the (BGR) photo box, on paper of grey level `paper` (`paper_level`);
    None when the box is empty."""
    region = inner(color, 1.0)
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    mask = (gray < pasted_below(paper)).astype(np.uint8)
    present, conf = _decide(float(mask.mean()), PHOTO_THR, 0.5)
    blob = _main_blob(mask) if present else None
    if blob is None:
        return None
    pixels, stat = blob
    rect = _photo_rect(stat, mask.shape)
    x0, y0, x1, y1 = rect
    pic = region[y0:y1, x0:x1]
    g = gray[y0:y1, x0:x1]  # the region's grey, already made (cvtColor is per pixel)
    corners = _top_corners(gray, pixels, int(stat[cv2.CC_STAT_AREA]), rect)
    light, bg_conf = _decide(float(np.median(corners)) / min(255.0, paper), BG_LIGHT, BG_SPREAD)  # as light as the paper
    sat = cv2.cvtColor(pic, cv2.COLOR_BGR2HSV)[:, :, 1]
    inked = g < 225
    mean_sat = float(sat[inked].mean()) if inked.any() else 0.0
    is_color, col_conf = _decide(mean_sat, 18.0, 0.35)
    return PhotoFound(_to_card(pic), conf, light, bg_conf, is_color, col_conf)


# a head on a 1-inch ID photo is about half its width; the simulator's portraits were found at 88-128
# of 358 px. Looking only for faces of 90 px and up (70 before) found the same on all 2,106 card
# photos of five campaigns, in 25 instead of 41 ms (the small scales are most of the windows).
FACE_MIN_SHARE = 0.25


class FaceFinder:
    """OpenCV's frontal-face Haar cascade (shipped in opencv-python-headless 4.x). Create once."""

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def has_face(self, card_bgr: np.ndarray) -> bool:
        """A face at least FACE_MIN_SHARE of the card photo's width (358 px) wide."""
        g = cv2.equalizeHist(cv2.cvtColor(card_bgr, cv2.COLOR_BGR2GRAY))
        side = int(FACE_MIN_SHARE * g.shape[1])
        faces = self.cascade.detectMultiScale(g, scaleFactor=1.1, minNeighbors=4, minSize=(side, side))
        return len(faces) > 0
