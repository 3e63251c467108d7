"""Card photos: any source image -> a 358 x 441 white-background JPEG, byte-for-byte reproducible."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

CARD_SIZE = (358, 441)  # width, height in pixels (the bureau's card photo)
JPEG_QUALITY = 92


class PhotoError(Exception):
    """The source photo is missing or not a readable image (reported per form, never fatal)."""


def card_jpeg(src: Path) -> bytes:
    """The card photo from `src`: a 358x441 JPEG is kept as it is; anything else is fitted and padded."""
    try:
        raw = src.read_bytes()
    except OSError as e:
        raise PhotoError(f"cannot read photo file ({type(e).__name__})") from None
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            if im.format == "JPEG" and im.size == CARD_SIZE and im.mode == "RGB" and not _rotated(im):
                return raw
            return fit_card(im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise PhotoError(f"not a readable image ({type(e).__name__})") from None


def _rotated(im: Image.Image) -> bool:
    return im.getexif().get(0x0112, 1) not in (1, None)


def fit_card(im: Image.Image) -> bytes:
    """Scale to fit inside 358x441 keeping proportions, centre on white, encode as JPEG."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "P", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    im = im.convert("RGB")
    fitted = ImageOps.contain(im, CARD_SIZE, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", CARD_SIZE, (255, 255, 255))
    canvas.paste(fitted, ((CARD_SIZE[0] - fitted.width) // 2, (CARD_SIZE[1] - fitted.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return buf.getvalue()
