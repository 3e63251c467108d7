"""Pasted pictures: 1-inch portraits (white, grey/blue background, grayscale photocopy) and a
photocopy of the front of an ID card with its number printed on it.

The portrait is scikit-image's `astronaut` cropped to head and shoulders with its background cut
out once per process (GrabCut with a fixed seed); each form varies it by flip, tint, scale, crop.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

PRINT_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
BACKGROUNDS = {"grey": (150, 150, 150), "blue": (200, 140, 60), "red": (50, 50, 190)}  # BGR


@lru_cache(maxsize=1)
def _cutout() -> tuple[np.ndarray, np.ndarray]:
    """(BGR crop, alpha 0..1) of the astronaut's head and shoulders, background removed."""
    from skimage import data

    c = np.ascontiguousarray(data.astronaut()[0:448, 40:380, ::-1])
    f = 0.5
    s = cv2.resize(c, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    h, w = s.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / f
    hsv = cv2.cvtColor(s, cv2.COLOR_BGR2HSV)
    m = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    m[yy > 150] = cv2.GC_PR_FGD
    m[(hsv[..., 0] < 22) & (hsv[..., 1] > 110) & (yy > 140) & (xx > 30)] = cv2.GC_FGD
    m[((xx - 185) / 60) ** 2 + ((yy - 110) / 80) ** 2 < 1] = cv2.GC_FGD
    m[((xx - 170) / 90) ** 2 + ((yy - 215) / 60) ** 2 < 1] = cv2.GC_FGD
    m[yy < 12] = cv2.GC_BGD
    m[(yy < 150) & ((xx < 50) | (xx > 300))] = cv2.GC_BGD
    m[(yy < 250) & (xx < 45)] = cv2.GC_BGD
    m[(yy > 330) & (xx > 250) & (hsv[..., 2] < 90)] = cv2.GC_BGD
    cv2.setRNGSeed(0)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(s, m, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(m, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    fg = cv2.resize(fg, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(fg, (0, 0), 1.5).astype(np.float32) / 255.0
    return c, alpha


def portrait_look(rng: np.random.Generator, style: str) -> dict:
    """How one pasted photo differs from the others (kept in the truth's marks)."""
    return {"style": style, "flip": bool(rng.random() < 0.5), "zoom": round(float(rng.uniform(0.8, 1.0)), 3),
            "x": round(float(rng.random()), 3), "y": round(float(rng.random()), 3),
            "tint": [round(float(t), 3) for t in rng.uniform(0.85, 1.12, 3)],
            "brightness": round(float(rng.uniform(0.9, 1.1)), 3),
            "background": str(rng.choice(list(BACKGROUNDS))) if style == "grey_bg" else "white"}


def portrait(style: str, w: int, h: int, look: dict) -> np.ndarray:
    """A w x h BGR 1-inch photo. style: 'color' (white bg), 'grey_bg' (grey/blue/red bg) or
    'photocopy' (grayscale copy on white); `look` from `portrait_look`. Deterministic."""
    img, alpha = _cutout()
    ch, cw = img.shape[:2]
    ah = int(ch * look["zoom"])
    aw = min(cw, int(ah * w / h))
    x0 = int(look["x"] * (cw - aw))
    y0 = int(look["y"] * (ch - ah) * 0.3)
    crop, a = img[y0:y0 + ah, x0:x0 + aw].astype(np.float32), alpha[y0:y0 + ah, x0:x0 + aw, None]
    if look["flip"]:
        crop, a = crop[:, ::-1], a[:, ::-1]
    crop = np.clip(crop * np.float32(look["tint"]) * look["brightness"], 0, 255)
    bg = np.array(BACKGROUNDS.get(look["background"], (250, 250, 250)), np.float32)
    out = cv2.resize(crop * a + bg * (1 - a), (w, h), interpolation=cv2.INTER_AREA)
    if style == "photocopy":
        g = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
        g = np.clip((g - 128) * 1.35 + 140, 0, 255)
        out = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    return np.clip(out, 0, 255).astype(np.uint8)


@lru_cache(maxsize=16)
def _pfont(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(PRINT_FONT, size)


def _card_text(d: ImageDraw.ImageDraw, k: float, name: str, gender: str, born: date | None, idn: str) -> None:
    ink = 40
    lab, val = _pfont(max(8, int(2.6 * k))), _pfont(max(8, int(3.3 * k)))
    rows = [("姓名", name, 6), ("性别", f"{gender}     民族  汉", 14)]
    if born:
        rows.append(("出生", f"{born.year}年{born.month}月{born.day}日", 22))
    rows.append(("住址", "广西梧州市长洲区新兴二路", 30))
    for label, value, y in rows:
        d.text((5 * k, y * k), label, fill=ink + 40, font=lab)
        d.text((13 * k, (y - 0.5) * k), value, fill=ink, font=val)
    d.text((5 * k, 45 * k), "公民身份号码", fill=ink + 40, font=lab)
    d.text((24 * k, 44.2 * k), idn, fill=ink, font=_pfont(max(8, int(4.0 * k))))


def id_copy(rng: np.random.Generator, k: float, name: str, gender: str, born: date | None,
            id_number: str) -> np.ndarray:
    """Gray image of a photocopied ID card front (85.6 x 54 mm card on a slightly larger paper
    cut-out) at `k` px/mm: name, gender, birth date, address, the ID number, a grey portrait."""
    pw, ph = int(90 * k), int(58 * k)
    paper = Image.new("L", (pw, ph), int(rng.integers(228, 245)))
    d = ImageDraw.Draw(paper)
    ox, oy = int(2.2 * k), int(2 * k)
    card = Image.new("L", (int(85.6 * k), int(54 * k)), int(rng.integers(170, 205)))
    cd = ImageDraw.Draw(card)
    _card_text(cd, k, name, gender, born, id_number)
    pic = portrait("photocopy", int(26 * k), int(32 * k), portrait_look(rng, "photocopy"))
    card.paste(Image.fromarray(cv2.cvtColor(pic, cv2.COLOR_BGR2GRAY)), (int(56 * k), int(6 * k)))
    paper.paste(card, (ox, oy))
    d.rounded_rectangle((ox, oy, ox + card.width, oy + card.height), radius=int(3 * k), outline=90,
                        width=max(1, int(0.3 * k)))
    g = np.asarray(paper, np.float32)
    g += rng.normal(0, 7, g.shape).astype(np.float32)  # copier toner grain
    g = cv2.GaussianBlur(g, (0, 0), 0.6)
    return np.clip(g, 0, 255).astype(np.uint8)
