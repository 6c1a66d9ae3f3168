"""Procedural 96×96 scenes for the demo: an object silhouette on a textured background.

Everything is drawn with pillow from a seeded ``numpy.random.Generator``, so the same seed
gives the same pixels. Each scene comes with its boolean object mask, which the tests use to
check where Grad-CAM looks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = ("airplane", "car", "ship", "bird")
BACKGROUNDS = ("sky", "road", "grass", "sea")
SKY_BLUE = (135, 206, 235)

# Shortcut variant: P(background | class). Sky is (almost) only ever behind airplanes, so
# "blue sky" alone predicts "airplane" - the shortcut the demo is about.
SHORTCUT_BACKGROUNDS = {
    "airplane": {"sky": 0.98, "road": 0.007, "grass": 0.007, "sea": 0.006},
    "car": {"road": 0.98, "grass": 0.01, "sea": 0.01},
    "ship": {"sea": 0.98, "road": 0.01, "grass": 0.01},
    "bird": {"grass": 0.98, "road": 0.01, "sea": 0.01},
}
# Object size as a fraction of the image side: small for the shortcut (the background is the
# easier cue), larger for the clean twin (so its Grad-CAM has something to point at).
SCALES = {"shortcut": (0.15, 0.30), "clean": (0.5, 0.75)}
_SS = 4  # supersampling factor for anti-aliased silhouettes


# -- backgrounds ------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _vertical_gradient(top, bottom, size: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    top = np.asarray(top, np.float32)
    bottom = np.asarray(bottom, np.float32)
    col = top * (1 - t) + bottom * t
    return np.broadcast_to(col, (size, size, 3)).copy()


def _jitter(rng: np.random.Generator, rgb, amount: float) -> np.ndarray:
    return np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3)


def _finish(arr: np.ndarray, rng: np.random.Generator, grain: float) -> Image.Image:
    arr = arr + rng.normal(0.0, grain, arr.shape[:2])[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _sky(rng: np.random.Generator, size: int) -> Image.Image:
    base = _jitter(rng, SKY_BLUE, 12)
    arr = _vertical_gradient(
        base - rng.uniform(10, 35) * np.array([1, 0.7, 0.2]),
        base + rng.uniform(0, 20) * np.array([1, 0.6, 0.1]),
        size,
    )
    arr += 5 * _smooth_noise(rng, size, 4)[..., None]
    if rng.random() < 0.6:  # soft clouds
        layer = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(layer)
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(0, size), rng.uniform(0, size * 0.8)
            for _ in range(rng.integers(3, 6)):
                rx, ry = rng.uniform(4, 12), rng.uniform(3, 7)
                x, y = cx + rng.uniform(-10, 10), cy + rng.uniform(-3, 3)
                d.ellipse([x - rx, y - ry, x + rx, y + ry], fill=int(rng.uniform(120, 220)))
        a = np.asarray(layer.filter(ImageFilter.GaussianBlur(2.5)), np.float32)[..., None] / 255
        arr = arr * (1 - a) + 250 * a
    return _finish(arr, rng, 2.0)


def _road(rng: np.random.Generator, size: int) -> Image.Image:
    g = rng.uniform(75, 120)
    arr = np.full((size, size, 3), g, np.float32) + rng.uniform(-6, 6, 3)
    arr += 10 * _smooth_noise(rng, size, 6)[..., None]
    img = _finish(arr, rng, 9.0)  # coarse asphalt grain
    d = ImageDraw.Draw(img)
    # A kerb along the top or bottom edge, then dashed lane markings.
    kerb = int(rng.uniform(4, 14))
    kerb_col = tuple(int(v) for v in _jitter(rng, (170, 170, 165), 15))
    if rng.random() < 0.5:
        d.rectangle([0, 0, size, kerb], fill=kerb_col)
    else:
        d.rectangle([0, size - kerb, size, size], fill=kerb_col)
    for _ in range(rng.integers(1, 3)):
        y = rng.uniform(size * 0.2, size * 0.8)
        col = (235, 235, 230) if rng.random() < 0.6 else (230, 190, 40)
        dash, gap = rng.uniform(8, 16), rng.uniform(6, 12)
        x = rng.uniform(-dash, 0)
        w = rng.uniform(1.5, 3)
        while x < size:
            d.rectangle([x, y, x + dash, y + w], fill=col)
            x += dash + gap
    return img.rotate(
        rng.uniform(-8, 8), resample=Image.BILINEAR, expand=False, fillcolor=(int(g),) * 3
    )


def _grass(rng: np.random.Generator, size: int) -> Image.Image:
    base = _jitter(rng, (70, 140, 50), 18)
    arr = _vertical_gradient(base * 0.85, base * 1.08, size)
    arr += 14 * _smooth_noise(rng, size, 5)[..., None] * np.array([0.6, 1, 0.4])
    img = _finish(arr, rng, 4.0)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(220, 360))):  # grass blades
        x, y = rng.uniform(0, size), rng.uniform(0, size + 4)
        h, lean = rng.uniform(3, 8), rng.uniform(-2.5, 2.5)
        k = rng.uniform(0.55, 1.35)
        col = tuple(int(np.clip(v, 0, 255)) for v in base * k)
        d.line([x, y, x + lean, y - h], fill=col, width=1)
    return img


def _sea(rng: np.random.Generator, size: int) -> Image.Image:
    base = _jitter(rng, (30, 80, 150), 14)
    arr = _vertical_gradient(base * 1.15, base * 0.75, size)
    arr += 8 * _smooth_noise(rng, size, 4)[..., None]
    img = _finish(arr, rng, 3.0)
    d = ImageDraw.Draw(img)
    light = tuple(int(v) for v in np.clip(base * 1.7 + 40, 0, 255))
    for _ in range(int(rng.integers(30, 55))):  # short wave crests
        x0, y0 = rng.uniform(-5, size), rng.uniform(0, size)
        length, amp = rng.uniform(6, 16), rng.uniform(0.8, 2.0)
        xs = np.linspace(x0, x0 + length, 8)
        ys = y0 - amp * np.sin(np.linspace(0, np.pi, 8))
        d.line(list(zip(xs.tolist(), ys.tolist())), fill=light, width=1)
    return img


_BACKGROUND_FNS = {"sky": _sky, "road": _road, "grass": _grass, "sea": _sea}


def draw_background(kind: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """Draw a textured background.

    Args:
        kind: One of ``BACKGROUNDS``.
        rng: Source of randomness.
        size: Side of the square image in pixels.

    Returns:
        An RGB image of ``size`` × ``size``.
    """
    if kind not in _BACKGROUND_FNS:
        raise ValueError(f"Unknown background '{kind}': use one of {BACKGROUNDS}.")
    return _BACKGROUND_FNS[kind](rng, size)


# -- objects ----------------------------------------------------------------------------------
# Each shape is a list of (fill role, polygon or ("ellipse", cx, cy, rx, ry)) in unit
# coordinates with y pointing up and the object facing +x. Roles map to colours per instance.


def _ellipse(cx, cy, rx, ry, n=20):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return list(zip((cx + rx * np.cos(t)).tolist(), (cy + ry * np.sin(t)).tolist()))


def _airplane(rng):
    """Top view: fuselage, swept wings, tailplane."""
    fw = rng.uniform(0.12, 0.16)  # half fuselage width
    sweep = rng.uniform(0.1, 0.4)
    span = rng.uniform(0.75, 0.95)
    chord = rng.uniform(0.32, 0.45)
    wx = rng.uniform(0.05, 0.3)  # wing root position along the fuselage
    fuselage = [(1.0, 0), (0.85, fw), (-0.8, fw * 0.8), (-0.98, 0), (-0.8, -fw * 0.8), (0.85, -fw)]
    parts = [("body", fuselage)]
    for s in (1, -1):
        parts.append(
            (
                "body",
                [
                    (wx, s * fw),
                    (wx - sweep, s * span),
                    (wx - sweep - chord * 0.6, s * span),
                    (wx - chord, s * fw),
                ],
            )
        )
        parts.append(
            (
                "body",
                [
                    (-0.62, s * fw * 0.8),
                    (-0.82, s * 0.36),
                    (-0.94, s * 0.36),
                    (-0.88, s * fw * 0.5),
                ],
            )
        )
    parts.append(("accent", [(0.9, fw * 0.4), (0.97, 0), (0.9, -fw * 0.4), (0.8, 0)]))
    return parts


def _car(rng):
    """Side view: body, cabin with windows, two wheels."""
    cab_h = rng.uniform(0.45, 0.65)
    cab_front = rng.uniform(0.25, 0.45)
    cab_back = rng.uniform(-0.55, -0.35)
    body = [
        (-1.0, -0.15),
        (-1.0, 0.18),
        (-0.9, 0.27),
        (cab_back, 0.3),
        (cab_back + 0.2, cab_h),
        (cab_front - 0.1, cab_h),
        (cab_front + 0.2, 0.3),
        (0.92, 0.22),
        (1.0, 0.05),
        (1.0, -0.15),
    ]
    window = [
        (cab_back + 0.1, 0.33),
        (cab_back + 0.25, cab_h - 0.07),
        (cab_front - 0.13, cab_h - 0.07),
        (cab_front + 0.08, 0.33),
    ]
    parts = [("body", body), ("window", window)]
    for wx in (-0.58, 0.58):
        parts.append(("tyre", _ellipse(wx, -0.16, 0.23, 0.23)))
        parts.append(("hub", _ellipse(wx, -0.16, 0.1, 0.1)))
    return parts


def _ship(rng):
    """Side view: hull, superstructure, funnel."""
    bow = rng.uniform(0.95, 1.1)
    sx0 = rng.uniform(-0.65, -0.35)
    sx1 = sx0 + rng.uniform(0.55, 0.85)
    hull = [(-0.95, 0.1), (bow, 0.16), (0.8, -0.28), (-0.85, -0.28)]
    parts = [
        ("body", hull),
        ("deck", [(sx0, 0.1), (sx0, 0.33), (sx1, 0.33), (sx1, 0.1)]),
        ("deck", [(sx0 + 0.1, 0.33), (sx0 + 0.1, 0.5), (sx1 - 0.25, 0.5), (sx1 - 0.25, 0.33)]),
    ]
    fx = sx0 + 0.15
    parts.append(("accent", [(fx, 0.5), (fx + 0.02, 0.72), (fx + 0.18, 0.72), (fx + 0.16, 0.5)]))
    parts.append(("accent", [(-0.8, 0.12), (-0.8, 0.2), (0.9, 0.2), (0.9, 0.12)]))
    return parts


def _bird(rng):
    """Side view in flight: body, head, beak, tail, one raised or lowered wing."""
    up = rng.random() < 0.6
    wy = rng.uniform(0.55, 0.9) * (1 if up else -1)
    parts = [
        ("body", _ellipse(0, 0, 0.48, 0.2)),
        ("body", _ellipse(0.5, 0.12, 0.16, 0.15)),
        ("accent", [(0.62, 0.17), (0.85, 0.1), (0.62, 0.05)]),
        ("body", [(-0.35, 0.05), (-0.9, 0.2), (-0.95, -0.1), (-0.35, -0.08)]),
        (
            "body",
            [(-0.2, 0.05), (0.25, 0.05), (-0.05 - rng.uniform(0.1, 0.4), wy), (-0.35, wy * 0.8)],
        ),
    ]
    return parts


_SHAPES = {"airplane": _airplane, "car": _car, "ship": _ship, "bird": _bird}

# Palettes keep objects off the background colours they sit on (no sky-blue planes, no
# green cars, no sea-blue hulls).
_PALETTES = {
    "airplane": {
        "body": [(225, 225, 228), (170, 172, 178), (200, 40, 40), (245, 245, 240), (110, 112, 120)],
        "accent": [(40, 40, 45), (200, 30, 30), (240, 200, 40)],
    },
    "car": {
        "body": [
            (200, 30, 30),
            (235, 190, 20),
            (240, 120, 20),
            (120, 40, 140),
            (245, 245, 245),
            (25, 25, 30),
            (150, 20, 60),
        ],
        "window": [(60, 70, 80), (180, 200, 210)],
        "tyre": [(20, 20, 20)],
        "hub": [(150, 150, 155), (200, 200, 200)],
    },
    "ship": {
        "body": [(25, 25, 30), (140, 30, 30), (80, 50, 40), (230, 230, 225)],
        "deck": [(245, 245, 240), (215, 205, 180)],
        "accent": [(200, 50, 30), (240, 180, 30), (30, 30, 30)],
    },
    "bird": {
        "body": [(30, 28, 30), (120, 75, 40), (200, 40, 30), (235, 200, 40), (90, 60, 50)],
        "accent": [(240, 160, 30), (60, 60, 60)],
    },
}


def draw_object(cls: str, rng: np.random.Generator, size: int) -> Image.Image:
    """Draw one object silhouette with a random pose, shape variant and colour.

    Args:
        cls: One of ``CLASS_NAMES``.
        rng: Source of randomness.
        size: Side of the square patch; the object's longest extent fills it.

    Returns:
        An RGBA patch of ``size`` × ``size``; alpha is the (anti-aliased) silhouette.
    """
    if cls not in _SHAPES:
        raise ValueError(f"Unknown class '{cls}': use one of {CLASS_NAMES}.")
    parts = _SHAPES[cls](rng)
    pal = _PALETTES[cls]
    colours = {
        role: np.asarray(opts[rng.integers(len(opts))], np.float32) for role, opts in pal.items()
    }
    if cls == "airplane":  # planes fly in any direction; ground/sea things stay upright-ish
        angle = rng.uniform(-np.pi, np.pi)
    else:
        angle = np.deg2rad(rng.uniform(-15, 15))
    flip = -1.0 if rng.random() < 0.5 else 1.0
    stretch = rng.uniform(0.85, 1.15)  # aspect variation
    c, s = np.cos(angle), np.sin(angle)
    polys = []
    for role, pts in parts:
        p = np.asarray(pts, np.float64)
        x, y = p[:, 0] * flip, p[:, 1] * stretch
        polys.append((role, np.stack([c * x - s * y, -(s * x + c * y)], 1)))  # y down
    allp = np.concatenate([p for _, p in polys])
    lo, hi = allp.min(0), allp.max(0)
    big = size * _SS
    k = (big - 2 * _SS) / (hi - lo).max()
    off = (big - (hi - lo) * k) / 2 - lo * k
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    for role, p in polys:
        col = np.clip(colours[role] + rng.uniform(-12, 12, 3), 0, 255).astype(int)
        d.polygon([tuple(q) for q in (p * k + off).tolist()], fill=(*col.tolist(), 255))
    small = img.resize((size, size), Image.BOX)
    # Light top-down shading so silhouettes are not perfectly flat.
    arr = np.asarray(small, np.float32).copy()
    shade = np.linspace(1.08, 0.9, size, dtype=np.float32)[:, None, None]
    arr[..., :3] = np.clip(arr[..., :3] * shade, 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGBA")


# -- scenes and datasets ----------------------------------------------------------------------
def make_scene(
    cls: str,
    background: str,
    rng: np.random.Generator,
    size: int = 96,
    scale: tuple[float, float] = SCALES["clean"],
) -> tuple[Image.Image, np.ndarray]:
    """Paste one object onto one background at a random position.

    Args:
        cls: Object class, one of ``CLASS_NAMES``.
        background: Background kind, one of ``BACKGROUNDS``.
        rng: Source of randomness.
        size: Side of the square scene.
        scale: (min, max) object extent as a fraction of ``size``.

    Returns:
        The RGB scene and its boolean object mask of shape (size, size).
    """
    scene = draw_background(background, rng, size)
    side = max(8, int(round(rng.uniform(*scale) * size)))
    patch = draw_object(cls, rng, side)
    x = int(rng.integers(0, size - side + 1))
    y = int(rng.integers(0, size - side + 1))
    scene.paste(patch, (x, y), patch)
    mask = np.zeros((size, size), bool)
    mask[y : y + side, x : x + side] = np.asarray(patch)[..., 3] >= 128
    return scene, mask


def _background_for(variant: str, cls: str, rng: np.random.Generator) -> str:
    if variant == "clean":
        return BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    table = SHORTCUT_BACKGROUNDS[cls]
    kinds = list(table)
    return kinds[rng.choice(len(kinds), p=np.array([table[k] for k in kinds]))]


def make_dataset(
    variant: str, n: int, seed: int, size: int = 96
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate a labelled set of scenes.

    Args:
        variant: ``"shortcut"`` (background predicts the class, small objects) or ``"clean"``
            (background independent of the class, larger objects).
        n: Number of images; classes are balanced (``n`` // 4 each, remainder spread).
        seed: Seed of the generator; same seed, same arrays.
        size: Image side.

    Returns:
        images uint8 (n, size, size, 3), labels int64 (n,), masks bool (n, size, size).
    """
    if variant not in SCALES:
        raise ValueError(f"Unknown variant '{variant}': use shortcut or clean.")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), bool)
    for i, lab in enumerate(labels):
        cls = CLASS_NAMES[lab]
        img, mask = make_scene(cls, _background_for(variant, cls, rng), rng, size, SCALES[variant])
        images[i] = np.asarray(img)
        masks[i] = mask
    return images, labels, masks


# -- sample images ----------------------------------------------------------------------------
SAMPLES = {
    # name: (class, background, seed); the plain sky is made separately below
    "airplane_sky": ("airplane", "sky", 11),
    "car_road": ("car", "road", 12),
    "ship_sea": ("ship", "sea", 13),
    "bird_grass": ("bird", "grass", 14),
    "car_on_sky": ("car", "sky", 15),
    "airplane_on_road": ("airplane", "road", 16),
}
SAMPLE_SCALE = (0.5, 0.5)  # the small end of the clean range, above the shortcut range


def make_samples(out_dir: str | Path) -> list[Path]:
    """Write the demo sample images and their masks as PNGs.

    Args:
        out_dir: Folder to write into (created if missing).

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (cls, bg, seed) in SAMPLES.items():
        img, mask = make_scene(cls, bg, np.random.default_rng(seed), 96, SAMPLE_SCALE)
        written += _save(out, name, img, mask)
    # The plain sky of the design's shortcut check: one flat colour, no object.
    sky = Image.new("RGB", (96, 96), SKY_BLUE)
    written += _save(out, "sky", sky, np.zeros((96, 96), bool))
    return written


def _save(out: Path, name: str, img: Image.Image, mask: np.ndarray) -> list[Path]:
    p, pm = out / f"{name}.png", out / f"{name}_mask.png"
    img.save(p, optimize=True)
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(pm, optimize=True)
    return [p, pm]
