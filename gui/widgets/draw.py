"""Plain charts drawn with PIL for saved figures (histograms, bar plots), uint8 RGB."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

INK = (40, 40, 40)
BLUE = (66, 110, 200)
RED = (200, 70, 60)


def bar_chart(
    values: np.ndarray,
    *,
    edges: np.ndarray | None = None,
    size: tuple[int, int] = (420, 220),
    signed_colours: bool = False,
) -> np.ndarray:
    """Bars of ``values`` with a zero line and the value range written on the axes.

    Args:
        values: Bar heights.
        edges: Bin edges for a histogram (their ends label the x axis); None = bar index.
        size: (width, height) in pixels.
        signed_colours: Colour positive bars red and negative bars blue.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64).ravel())
    w, h = size
    left, right, top, bottom = 48, 8, 8, 20
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    lo, hi = min(0.0, float(v.min(initial=0.0))), max(0.0, float(v.max(initial=0.0)))
    hi = hi if hi > lo else lo + 1.0
    plot_w, plot_h = w - left - right, h - top - bottom

    def y_of(val: float) -> float:
        return top + (hi - val) / (hi - lo) * plot_h

    n = max(1, len(v))
    step = plot_w / n
    for i, val in enumerate(v):
        x0 = left + i * step
        colour = (RED if val >= 0 else BLUE) if signed_colours else BLUE
        y0, y1 = sorted((y_of(0.0), y_of(float(val))))
        d.rectangle([x0, y0, max(x0, x0 + step * 0.85 - 1), max(y0, y1)], fill=colour)
    d.line([(left, y_of(0.0)), (w - right, y_of(0.0))], fill=INK)
    d.line([(left, top), (left, h - bottom)], fill=INK)
    d.text((2, top), f"{hi:.3g}", fill=INK)
    d.text((2, h - bottom - 10), f"{lo:.3g}", fill=INK)
    if edges is not None and len(edges) > 1:
        d.text((left, h - bottom + 4), f"{float(edges[0]):.3g}", fill=INK)
        text = f"{float(edges[-1]):.3g}"
        d.text((w - right - 6 * len(text), h - bottom + 4), text, fill=INK)
    else:
        d.text((left, h - bottom + 4), "0", fill=INK)
        d.text((w - right - 30, h - bottom + 4), str(len(v) - 1), fill=INK)
    return np.asarray(img)
