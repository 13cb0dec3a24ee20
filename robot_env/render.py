"""Headless drawing for the numpy tasks' ``rgb_array`` mode: discs and thick segments in numpy.

No display and no matplotlib: a frame is a ``(size, size, 3)`` uint8 array, cheap enough to
record every step of a demo into a GIF.
"""

from __future__ import annotations

import numpy as np

Colour = tuple[int, int, int]


class Canvas:
    """A square canvas over the world box ``[-extent, extent]^2`` (metres, y up)."""

    def __init__(self, size: int = 256, extent: float = 1.0, background: Colour = (250, 250, 245)):
        self.size = size
        self.extent = extent
        self.background = np.array(background, np.uint8)
        pixel = (np.arange(size) + 0.5) / size * 2 * extent - extent
        self._x, self._y = np.meshgrid(pixel, pixel[::-1])
        self._frame = np.empty((size, size, 3), np.uint8)
        self.clear()

    def clear(self) -> Canvas:
        self._frame[:] = self.background
        return self

    def disc(self, centre: np.ndarray, radius: float, colour: Colour) -> Canvas:
        inside = (self._x - centre[0]) ** 2 + (self._y - centre[1]) ** 2 <= radius**2
        self._frame[inside] = colour
        return self

    def segment(self, start: np.ndarray, end: np.ndarray, width: float, colour: Colour) -> Canvas:
        """A segment ``width`` metres thick with round caps."""
        direction = np.asarray(end, float) - np.asarray(start, float)
        length_sq = max(float(direction @ direction), 1e-12)
        along = (
            (self._x - start[0]) * direction[0] + (self._y - start[1]) * direction[1]
        ) / length_sq
        along = np.clip(along, 0.0, 1.0)
        dx = self._x - (start[0] + along * direction[0])
        dy = self._y - (start[1] + along * direction[1])
        self._frame[dx**2 + dy**2 <= (width / 2) ** 2] = colour
        return self

    def image(self) -> np.ndarray:
        return self._frame.copy()
