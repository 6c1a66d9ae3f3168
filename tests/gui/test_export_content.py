"""File ▸ Export all writes each panel's content (issue 23), not grabs of hidden widgets."""

import csv

from PIL import Image


def test_export_all_writes_tables_as_csv_and_no_widget_grabs(window, tmp_path):
    snap = window.state.snapshot
    written = {p.name: p for p in window.export_all(tmp_path)}
    # Before: layer_stats.png, hook_code.png, edits.png, model.png: 140-px grabs of widgets.
    assert not {"layerstats.png", "hookcode.png", "modeltree.png", "edits.png"} & set(written)
    with open(written["layerstats.csv"], newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header[:4] == ["Layer", "Call", "Shape", "Act mean"]
    calls = sum(len(c) for c in snap.layers.values())
    assert len(rows) == calls >= 3
    first = snap.layers[rows[0][0]][0]
    assert float(rows[0][3]) == float(f"{first.stats['activation']['mean']:.4g}")
    with open(written["predictions.csv"], newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header[0] == "Class" and rows[0][0] == snap.topk[0][1] and len(rows) == len(snap.topk)
    # The model tree, depth-first with indented names; the hook code as text.
    with open(written["modeltree.csv"], newline="") as f:
        tree = list(csv.reader(f))
    assert tree[0][:2] == ["Module", "Type"] and any(r[0] == "    block3" for r in tree)
    assert "register_forward_hook" in written["hookcode.txt"].read_text()
    # Figures drawn from their arrays keep a real size.
    with Image.open(written["activations.png"]) as img:
        assert img.width > 300 and img.height > 200
