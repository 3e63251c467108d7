"""Register a scanned page to its layout: ArUco corner marks -> homography (an affine map or a
rotation-scale-shift where a mark or two is missing, `_fit`) -> aligned page.

The aligned page is drawn at `ALIGN_DPI` with the layout's millimetre frame, so every zone crop is
`Box.to_px(ALIGN_DPI)` on it. Marker ids say which corner is which, so a page fed upside down or
sideways is turned the right way by the same homography.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forms.layout import Layout, mm_to_px

ALIGN_DPI = 200
CORNER_FRACTION = 0.26  # corner search squares, as a share of the page's shorter side
# A homography that moves no point of the page more than this (aligned px) from its best affine fit
# is warped as that affine map: half the time (simulated 200 / 300 dpi scans: 37 -> 18 ms on one
# core), and what it moves is of the order of OpenCV's 1/32 px interpolation step. Sheet-fed scans
# are affine (the simulated campaigns' pages stay within 0.04 px); a page photographed at an angle
# or a curled sheet on a flatbed is warped by the homography in full.
AFFINE_TOLERANCE_PX = 0.05
# The marks are looked for in each corner with one adaptive-threshold window first (px; OpenCV's
# default tries 3, 13 and 23): 16 -> 7 ms a page on 30 simulated 200 and 300 dpi scans (24 -> 11 ms
# a form page over a 1,000-form campaign, on a slower day), the same marks found, corners within
# 0.01 px. A corner where that finds no mark is searched again with the full range (a blurred,
# faint or high-resolution scan).
QUICK_THRESH_WINDOW = 13
# A mark printed with faded toner and scanned 1-bit is a scatter of dots; a corner where neither
# pass finds a mark is searched once more blurred by this much (px), which merges the dots into the
# mark's grey square (harsh profile: 4 of 17 such form pages that had waited unidentified).
SPECKLED_BLUR_SIGMA = 1.5


@dataclass(frozen=True)
class Alignment:
    """The result of registering one page. `matrix` maps scan px -> aligned px at ALIGN_DPI."""

    matrix: np.ndarray
    marks_found: int
    residual_mm: float  # RMS distance between detected and expected mark corners after the fit
    rotation: int  # 0, 90, 180 or 270: how the page was turned in the scan (clockwise)
    scan_dpi: float  # estimated from the marks' size
    affine: np.ndarray | None = None  # 2x3 scan px -> aligned px, where `matrix` is that affine map (see `affine_of`)


class MarkFinder:
    """Finds the layout's corner markers. Create once per process and reuse."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        dic = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, layout.marks.dictionary))
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        self.detector = cv2.aruco.ArucoDetector(dic, params)
        quick = cv2.aruco.DetectorParameters()
        quick.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        quick.adaptiveThreshWinSizeMin = quick.adaptiveThreshWinSizeMax = QUICK_THRESH_WINDOW
        self.quick = cv2.aruco.ArucoDetector(dic, quick)
        self.ids = set(layout.marks.positions)

    def _detect(self, gray: np.ndarray, ox: int = 0, oy: int = 0, detector=None) -> dict[int, np.ndarray]:
        corners, ids, _ = (detector or self.detector).detectMarkers(gray)
        found = {}
        if ids is not None:
            for c, i in zip(corners, ids.ravel(), strict=True):
                if int(i) in self.ids:
                    found[int(i)] = c.reshape(4, 2) + (ox, oy)
        return found

    def find(self, gray: np.ndarray) -> dict[int, np.ndarray]:
        """Marker id -> its 4 corners in scan pixels. Looks in the corners first (one threshold
        window, then, in a corner where no mark was found that way, the detector's full range of
        windows, then that blurred: a speckled mark), then the whole page."""
        h, w = gray.shape[:2]
        s = int(min(h, w) * CORNER_FRACTION)
        found: dict[int, np.ndarray] = {}
        for ox, oy in ((0, 0), (w - s, 0), (0, h - s), (w - s, h - s)):
            square = gray[oy:oy + s, ox:ox + s]
            found.update(self._detect(square, ox, oy, self.quick) or self._detect(square, ox, oy)
                         or self._detect(cv2.GaussianBlur(square, (0, 0), SPECKLED_BLUR_SIGMA), ox, oy))
        if len(found) < 3:
            found.update(self._detect(gray))
        return found


def _rotation(matrix: np.ndarray) -> int:
    """How the scan is turned relative to the page (clockwise degrees, to the nearest 90)."""
    inv = np.linalg.inv(matrix)
    pts = cv2.perspectiveTransform(np.float32([[[0, 0]], [[100, 0]]]), inv).reshape(2, 2)
    vx = pts[1] - pts[0]  # the page's x axis as seen in the scan
    return int(round(np.degrees(np.arctan2(vx[1], vx[0])) / 90.0)) % 4 * 90


def align(layout: Layout, finder: MarkFinder, gray: np.ndarray) -> Alignment | None:
    """Fit scan -> aligned page from the marks; None when fewer than two marks are found."""
    found = finder.find(gray)
    if len(found) < 2:
        return None
    k = mm_to_px(1.0, ALIGN_DPI)
    src, dst = [], []
    for i, corners in sorted(found.items()):
        src.extend(corners)
        dst.extend(np.array(layout.marks.corners_mm(i)) * k)
    src_a, dst_a = np.float32(src), np.float32(dst)
    matrix = _fit(src_a, dst_a, len(found))
    if matrix is None:
        return None
    proj = cv2.perspectiveTransform(src_a.reshape(-1, 1, 2), matrix).reshape(-1, 2)
    residual = float(np.sqrt(np.mean(np.sum((proj - dst_a) ** 2, axis=1)))) / k
    side_px = np.mean([np.linalg.norm(c[1] - c[0]) for c in found.values()])
    return Alignment(matrix, len(found), residual, _rotation(matrix),
                     float(side_px / mm_to_px(layout.marks.size_mm, 1.0)),  # px over px-per-dpi
                     affine_of(matrix, layout.page_px(ALIGN_DPI)))


def _fit(src: np.ndarray, dst: np.ndarray, marks: int) -> np.ndarray | None:
    """scan px -> aligned px (3x3) from the marks' corners, with no more freedom than the marks
    found can pin down: all four, a homography (a page photographed at an angle); three, an affine
    map; two, a rotation, one scale and a shift. Two or three marks sit in one part of the page (a
    sheet fed askew with a corner off the glass), and a homography fitted to them fits their corners
    exactly while bending the rest of the page at will: on a 200 dpi scan of the harsh profile whose
    lower marks were cut off, the guardian section's zones landed 7 mm below the writing, with a
    residual of 0.07 mm."""
    if marks >= 4:
        m, _ = cv2.findHomography(src, dst, 0)
        return m
    x, y = src[:, 0].astype(np.float64), src[:, 1].astype(np.float64)
    one, zero = np.ones_like(x), np.zeros_like(x)
    if marks == 3:  # u = a x + b y + c, v = d x + e y + f
        design = np.vstack([np.stack([x, y, one, zero, zero, zero], 1), np.stack([zero, zero, zero, x, y, one], 1)])
    else:  # u = a x - b y + c, v = b x + a y + f
        design = np.vstack([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    fit, *_ = np.linalg.lstsq(design, np.concatenate([dst[:, 0], dst[:, 1]]).astype(np.float64), rcond=None)
    if not np.all(np.isfinite(fit)):
        return None
    if marks == 3:
        a, b, c, d, e, f = fit
        return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])
    a, b, c, f = fit
    return np.array([[a, -b, c], [b, a, f], [0.0, 0.0, 1.0]])


def affine_of(matrix: np.ndarray, size: tuple[int, int], tolerance: float = AFFINE_TOLERANCE_PX) -> np.ndarray | None:
    """The affine map (2x3, scan px -> aligned px) that the homography `matrix` is within
    `tolerance` aligned px of over the whole aligned page of `size` (w, h); None when it is not
    (a page with perspective). Fitted by least squares on a grid of page points."""
    w, h = size
    ys, xs = np.mgrid[0 : h + 1 : max(1, h // 8), 0 : w + 1 : max(1, w // 8)]
    dst = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    try:
        src = cv2.perspectiveTransform(dst.reshape(-1, 1, 2), np.linalg.inv(matrix)).reshape(-1, 2)
    except np.linalg.LinAlgError:
        return None
    design = np.hstack([src, np.ones((len(src), 1))])
    fit, *_ = np.linalg.lstsq(design, dst, rcond=None)
    if not np.all(np.isfinite(fit)) or float(np.abs(design @ fit - dst).max()) > tolerance:
        return None
    return np.ascontiguousarray(fit.T)


def warp_to(img: np.ndarray, a: Alignment, size: tuple[int, int], shift: tuple[int, int] = (0, 0),
            border: int | tuple[int, int, int] = 255) -> np.ndarray:
    """`img` (the scan) warped by `a` into an image of `size` (w, h) whose origin is the aligned
    page's pixel `shift` (x0, y0): by the affine map where the page has one, else the homography."""
    x0, y0 = shift
    if a.affine is not None:
        m = a.affine - np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float64)
        return cv2.warpAffine(img, m, size, flags=cv2.INTER_AREA, borderValue=border)
    moved = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64) @ a.matrix
    return cv2.warpPerspective(img, moved, size, flags=cv2.INTER_AREA, borderValue=border)


def warp(layout: Layout, gray: np.ndarray, a: Alignment) -> np.ndarray:
    """The aligned page at ALIGN_DPI (white outside the scan)."""
    return warp_to(gray, a, layout.page_px(ALIGN_DPI))
