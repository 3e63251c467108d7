"""Register a scanned page to its layout: ArUco corner marks -> homography -> aligned page.

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


@dataclass(frozen=True)
class Alignment:
    """The result of registering one page. `matrix` maps scan px -> aligned px at ALIGN_DPI."""

    matrix: np.ndarray
    marks_found: int
    residual_mm: float  # RMS distance between detected and expected mark corners after the fit
    rotation: int  # 0, 90, 180 or 270: how the page was turned in the scan (clockwise)
    scan_dpi: float  # estimated from the marks' size


class MarkFinder:
    """Finds the layout's corner markers. Create once per process and reuse."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        dic = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, layout.marks.dictionary))
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        self.detector = cv2.aruco.ArucoDetector(dic, params)
        self.ids = set(layout.marks.positions)

    def _detect(self, gray: np.ndarray, ox: int = 0, oy: int = 0) -> dict[int, np.ndarray]:
        corners, ids, _ = self.detector.detectMarkers(gray)
        found = {}
        if ids is not None:
            for c, i in zip(corners, ids.ravel(), strict=True):
                if int(i) in self.ids:
                    found[int(i)] = c.reshape(4, 2) + (ox, oy)
        return found

    def find(self, gray: np.ndarray) -> dict[int, np.ndarray]:
        """Marker id -> its 4 corners in scan pixels. Looks in the corners first, then the page."""
        h, w = gray.shape[:2]
        s = int(min(h, w) * CORNER_FRACTION)
        found: dict[int, np.ndarray] = {}
        for ox, oy in ((0, 0), (w - s, 0), (0, h - s), (w - s, h - s)):
            found.update(self._detect(gray[oy:oy + s, ox:ox + s], ox, oy))
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
    matrix, _ = cv2.findHomography(src_a, dst_a, 0)
    if matrix is None:
        return None
    proj = cv2.perspectiveTransform(src_a.reshape(-1, 1, 2), matrix).reshape(-1, 2)
    residual = float(np.sqrt(np.mean(np.sum((proj - dst_a) ** 2, axis=1)))) / k
    side_px = np.mean([np.linalg.norm(c[1] - c[0]) for c in found.values()])
    return Alignment(matrix, len(found), residual, _rotation(matrix),
                     float(side_px / mm_to_px(layout.marks.size_mm, 1.0)))  # px over px-per-dpi


def warp(layout: Layout, gray: np.ndarray, a: Alignment) -> np.ndarray:
    """The aligned page at ALIGN_DPI (white outside the scan)."""
    w, h = layout.page_px(ALIGN_DPI)
    return cv2.warpPerspective(gray, a.matrix, (w, h), flags=cv2.INTER_AREA, borderValue=255)
