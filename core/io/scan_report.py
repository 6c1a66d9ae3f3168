"""``report.html`` of a dataset scan and the mean-map PNGs of ``clusters.json``.

The page is static: no script, every picture a ``data:`` PNG, so it opens offline in any
browser and can be mailed as one file. Every file and class name is HTML-escaped, and a
Content-Security-Policy forbids scripts outright as a second guard.

Colours come from the caller: ``colorize(map) -> uint8 RGB`` (the scan job passes the app's
colour table, so the report looks like the app) and optional cluster colours; without them
maps are grey and clusters get evenly spaced hues.
"""

from __future__ import annotations

import base64
import colorsys
import html
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hookscope.core.display.render import blend, upsample
from hookscope.core.errors import HookScopeError
from hookscope.core.io.concept_outputs import cluster_concepts, concept_strip, read_concepts
from hookscope.core.io.scan_outputs import CLUSTER_DIR, REPORT_FILE, ScanOutputs

Colorize = Callable[[np.ndarray], np.ndarray]

THUMB = 112
MEAN_SIDE = 160
MAX_DOTS = 5000
CROP = 72
"""Side of a concept's patch crop in the report."""


def grey(m: np.ndarray) -> np.ndarray:
    """Fallback colouring: a [0, 1] map as grey uint8 RGB."""
    g = (np.clip(np.nan_to_num(np.asarray(m, np.float32)), 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def hues(n: int) -> list[tuple[int, int, int]]:
    """``n`` evenly spaced, distinguishable colours (fallback cluster colours)."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.9)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out[:n]


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 RGB (H, W, 3) → PNG file bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def map_rgb(m: np.ndarray, side: int, colorize: Colorize | None) -> np.ndarray:
    """A [0, 1] map resized to ``side``² and coloured."""
    m = np.clip(upsample(np.asarray(m, np.float32), (side, side)), 0, 1)
    return (colorize or grey)(m)


def write_mean_maps(
    out: str | Path, means: dict[int, np.ndarray], colorize: Colorize | None = None
) -> dict[int, str]:
    """Save each cluster's mean map as ``clusters/cluster_NN.png``; returns id → relative path."""
    folder = Path(out) / CLUSTER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for cid, m in means.items():
        rel = f"{CLUSTER_DIR}/cluster_{cid:02d}.png"
        try:
            (Path(out) / rel).write_bytes(png_bytes(map_rgb(m, MEAN_SIDE, colorize)))
        except OSError as exc:
            raise HookScopeError(f"Cannot write {Path(out) / rel}: {exc.strerror}.") from exc
        paths[cid] = rel
    return paths


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _bars(counts: dict, total: int, colour: str) -> str:
    rows = []
    for name, c in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:8]:
        w = 100.0 * c / max(1, total)
        rows.append(
            f'<div class="bar"><span class="bl">{_e(name)}</span>'
            f'<span class="bt"><span style="width:{w:.1f}%;background:{colour}"></span></span>'
            f'<span class="bn">{int(c)}</span></div>'
        )
    return "".join(rows) or '<div class="muted">none</div>'


def _scatter(scan: ScanOutputs, colours: Sequence[tuple[int, int, int]], side: int = 360) -> str:
    cl = scan.column("cluster")
    x, y = scan.column("x"), scan.column("y")
    ok = (cl >= 0) & np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return ""
    lo_x, hi_x, lo_y, hi_y = x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max()
    rows = np.flatnonzero(ok)
    if len(rows) > MAX_DOTS:  # keep the page light: an even subsample keeps every cluster's shape
        rows = rows[np.linspace(0, len(rows) - 1, MAX_DOTS).astype(np.int64)]
    xs, ys, cs = x[rows], y[rows], cl[rows]
    sx = (side - 20) / max(hi_x - lo_x, 1e-9)
    sy = (side - 20) / max(hi_y - lo_y, 1e-9)
    dots = []
    for cx, cy, c in zip(xs, ys, cs):
        r, g, b = colours[int(c) % len(colours)]
        dots.append(
            f'<circle cx="{10 + (cx - lo_x) * sx:.1f}" cy="{side - 10 - (cy - lo_y) * sy:.1f}" '
            f'r="3" fill="rgb({r},{g},{b})"/>'
        )
    return (
        f'<svg class="scatter" width="{side}" height="{side}" viewBox="0 0 {side} {side}" '
        f'xmlns="http://www.w3.org/2000/svg"><rect width="{side}" height="{side}" fill="#fff"/>'
        + "".join(dots)
        + "</svg>"
    )


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:0 0 6px}
.muted{color:#777} .meta{margin-bottom:14px}
.top{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap;margin-bottom:18px}
table.sum{border-collapse:collapse} table.sum td,table.sum th{padding:2px 10px;text-align:left;
border-bottom:1px solid #ddd}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.cluster{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin:12px 0}
.row{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.mean img{width:160px;height:160px;image-rendering:auto;border:1px solid #ccc}
.comp{min-width:260px}
.bar{display:flex;gap:6px;align-items:center;font-size:12px}
.bl{width:110px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bt{flex:1;background:#eee;height:9px;width:120px;display:inline-block}
.bt span{display:block;height:9px} .bn{width:34px;text-align:right}
.strip{display:flex;gap:8px;overflow-x:auto;margin-top:10px}
.ex{font-size:11px;width:116px;flex:none} .ex img{display:block;width:112px;height:112px;
border:1px solid #ccc;margin-bottom:2px}
.ex .cap{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.plot{font-size:12px;color:#777;text-align:center}
.bad{color:#b00}
.concepts{margin-top:10px;font-size:13px} .concept{margin:6px 0}
.concept img{display:block;border:1px solid #ccc;margin-top:2px} .cn{font-size:12px}
"""


def _read_concepts(scan: ScanOutputs):
    """``(ConceptSet or None, cluster id → ranked concepts)``; none when they cannot be read
    (the page is still written, with a note in place of the concepts)."""
    try:
        return read_concepts(scan.folder), cluster_concepts(scan)
    except HookScopeError:
        return None, {}


def _concepts_html(concepts, ranked, shown: int = 5, crops: int = 4) -> str:
    """A cluster's concepts, highest importance first, each with its top patch crops."""
    if concepts is None or not ranked:
        return ""
    rows = [
        "<div class='concepts'><b>Concepts</b> <span class='muted'>(NMF of the layer's "
        "activations; importance = Σ_p U_k(p)·(w_k·∂y/∂A(p)), y the explained class's centred "
        "logit, mean over the cluster's images; share of Σ_p A·∂y/∂A)</span>"
    ]
    for rc in ranked[:shown]:
        if not 0 <= rc.id < len(concepts):
            continue
        share = "" if rc.share is None else f" · <b>{_fmt(100 * rc.share, 0)} %</b> of the score"
        strip = concept_strip(concepts, rc.id, crops, CROP)
        img = ""
        if strip is not None:
            img = f"<img alt='top patches of concept {rc.id}' src='{data_uri(strip)}'>"
        paths = ", ".join(_e(p.path) for p in concepts.patches[rc.id][:crops])
        rows.append(
            f"<div class='concept' title='{paths}'><div class='cn'>concept {rc.id} · importance "
            f"{_fmt(rc.importance, 3)}{share}</div>{img}</div>"
        )
    if len(ranked) > shown:
        rest = ", ".join(f"{rc.id} ({_fmt(rc.importance, 3)})" for rc in ranked[shown:])
        rows.append(f"<div class='muted'>also: {rest}</div>")
    return "".join(rows) + "</div>"


def write_report(
    scan: ScanOutputs,
    *,
    colorize: Colorize | None = None,
    cluster_colors: Sequence[tuple[int, int, int]] | None = None,
    examples: int = 8,
    alpha: float = 0.5,
    title: str | None = None,
) -> Path:
    """Write ``report.html`` into the scan folder.

    Args:
        scan: The opened folder (:func:`~core.io.scan_outputs.open_scan`).
        colorize: [0, 1] map → uint8 RGB (the app's colour map); grey when None.
        cluster_colors: RGB per cluster id for the scatter and swatches.
        examples: Thumbnails per cluster (the most typical first, as in clusters.json).
        alpha: Opacity of the map over its image.
        title: Page heading.
    """
    ident = scan.settings.get("identity", {})
    colours = list(cluster_colors or hues(max(1, len(scan.clusters))))
    paths = scan.column("path")
    row_of = {p: k for k, p in enumerate(paths)}
    labels, preds = scan.column("label"), scan.column("pred")
    bg, err, probs = scan.column("bg_mass"), scan.column("error"), scan.column("prob")
    n_err = int(sum(e is not None for e in err))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{_e(title or 'HookScope scan')}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title or 'HookScope dataset scan')}</h1>",
        '<div class="meta muted">'
        f"model {_e(ident.get('model'))} · layer {_e(ident.get('layer'))} · "
        f"{_e(ident.get('method'))} · target {_e(ident.get('target'))} · "
        f"{len(scan)} images ({n_err} unreadable) · folder {_e(ident.get('images'))}"
        + ("" if scan.complete else " · <b>partial scan</b>")
        + "</div>",
        # What the scan simplified or redid (all maps equal, more clusters than maps, ...).
        *(f"<p class='note'>{_e(n)}</p>" for n in scan.settings.get("notes") or ()),
    ]
    summary = [
        "<table class='sum'><tr><th>cluster</th><th>images</th><th>share</th>"
        "<th>mean bg_mass</th><th>accuracy</th><th>top prediction</th></tr>"
    ]
    for c in scan.clusters:
        r, g, b = colours[c.id % len(colours)]
        top = max(c.preds.items(), key=lambda kv: kv[1])[0] if c.preds else None
        summary.append(
            f"<tr><td><span class='swatch' style='background:rgb({r},{g},{b})'></span>"
            f"{c.id}</td><td>{c.size}</td><td>{_fmt(100 * c.share, 1)} %</td>"
            f"<td>{_fmt(c.mean_bg_mass)}</td><td>{_fmt(c.accuracy)}</td><td>{_e(top)}</td></tr>"
        )
    summary.append("</table>")
    how = {"tsne": "t-SNE", "umap": "UMAP"}.get(scan.settings.get("embedding"), "2-D embedding")
    scatter = _scatter(scan, colours)
    if scatter:
        scatter = (
            f"<div>{scatter}<div class='plot'>{how} of the maps, coloured by cluster</div></div>"
        )
    parts.append(f"<div class='top'>{scatter}<div>{''.join(summary)}</div></div>")
    if not scan.clusters:
        parts.append("<p class='muted'>No clusters: the scan is partial or found no maps.</p>")
    concepts, by_cluster = _read_concepts(scan)
    for c in scan.clusters:
        r, g, b = colours[c.id % len(colours)]
        mean = scan.mean_map(c.id)
        parts.append(
            f"<div class='cluster'><h2><span class='swatch' style='background:rgb({r},{g},{b})'>"
            f"</span>Cluster {c.id} · {c.size} images ({_fmt(100 * c.share, 1)} %) · "
            f"mean bg_mass {_fmt(c.mean_bg_mass)}</h2><div class='row'>"
            f"<div class='mean'><img alt='mean map of cluster {c.id}' "
            f"src='{data_uri(map_rgb(mean, MEAN_SIDE, colorize))}'><div class='muted'>mean map"
            "</div></div>"
            f"<div class='comp'><b>labels</b>{_bars(c.labels, c.size, '#7a9cc6')}"
            f"<b>predictions</b>{_bars(c.preds, c.size, '#d08c60')}"
            f"<div class='muted'>accuracy {_fmt(c.accuracy)}</div></div></div>"
            "<div class='strip'>"
        )
        for p in c.examples[:examples]:
            k = row_of.get(p)
            if k is None:
                continue
            thumb = scan.input_image(k, THUMB)
            cmap = map_rgb(scan.map(k), THUMB, colorize)
            over = blend(thumb, cmap, alpha) if thumb is not None else cmap
            img_tag = f"<img alt='{_e(p)}' src='{data_uri(thumb)}'>" if thumb is not None else ""
            ok = labels[k] is None or labels[k] == preds[k]
            said = f"{_e(labels[k])} → {_e(preds[k])}" if labels[k] is not None else _e(preds[k])
            parts.append(
                f"<div class='ex' title='{_e(p)}'>{img_tag}"
                f"<img alt='map of {_e(p)}' src='{data_uri(over)}'>"
                f"<div class='cap'>{_e(p)}</div>"
                f"<div class='cap{'' if ok else ' bad'}'>{said}</div>"
                f"<div class='cap muted'>p {_fmt(float(probs[k]))} · bg {_fmt(float(bg[k]))}"
                "</div></div>"
            )
        parts.append("</div>")  # the strip
        parts.append(_concepts_html(concepts, by_cluster.get(c.id, ())))
        parts.append("</div>")
    bad = [(p, e) for p, e in zip(paths, err) if e is not None]
    if bad:
        parts.append("<div class='cluster'><h2>Unreadable images</h2><ul>")
        parts += [f"<li>{_e(p)}: {_e(e)}</li>" for p, e in bad[:200]]
        parts.append("</ul></div>")
    parts.append("</body></html>\n")
    path = scan.folder / REPORT_FILE
    try:
        path.write_text("".join(parts), "utf-8")
    except OSError as exc:
        raise HookScopeError(f"Cannot write {path}: {exc.strerror}.") from exc
    return path
