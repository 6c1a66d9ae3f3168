"""Compare dock: pin a run as the baseline, then see every later run against it.

Difference maps (run − baseline) for the selected layer's activation and gradient (mean over
channels), the CAM, and the input gradient, on a diverging colour map with zero at the centre;
a table of class probabilities before / after / delta. ``core.experiments.compare`` does the
arithmetic on the Snapshots' numpy arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from hookscope.core.experiments.compare import RunView, compare_runs
from hookscope.core.experiments.interventions import describe_edit
from hookscope.core.jobs.experiments import channel_mean
from hookscope.gui import figures
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.layer_picker import LayerPicker
from hookscope.gui.widgets.panes import ImagePane

DIVERGING = figures.DIVERGING
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
NO_CHANGE = " — no change: all 0"
"""Title tail of a Δ pane whose difference is zero everywhere (it has no colour scale)."""


def run_label(state) -> str:
    """What the current run is: image name, image edits, model edits."""
    name = Path(state.image_path).name if state.image_path else "pasted image"
    bits = [name]
    if state.image_edits:
        ops = ", ".join(d.get("op", "?") for d in state.image_edits)
        bits.append(f"image: {ops}")
    bits += [describe_edit(d) for d in state.edits]
    return "; ".join(bits)


def _tail(name: str) -> str:
    """The last part of a layer name: pane titles must fit a narrow pane."""
    return name.rsplit(".", 1)[-1]


def _as_2d(a: np.ndarray | None) -> np.ndarray | None:
    """A map to draw: channel mean of (C, h, w), a row for a vector."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 1:
        return a[None, :]
    return channel_mean(a)


class CompareDock(BaseDock):
    """Baseline vs this run: inputs, difference maps and top-k deltas."""

    TITLE = "Compare"
    OBJECT_NAME = "CompareDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.pin_button = QPushButton("Pin as baseline", self)
        self.pin_button.setToolTip("Keep the current run; later runs are compared with it")
        self.pin_button.clicked.connect(self.pin)
        self.add_header_widget(self.pin_button)
        self.clear_button = QPushButton("Unpin", self)
        self.clear_button.clicked.connect(self.unpin)
        self.add_header_widget(self.clear_button)
        self.picker = LayerPicker(state, self)
        self.body.addWidget(self.picker)

        split = QSplitter(Qt.Orientation.Vertical, self)
        grid_host = QWidget(split)
        grid = QGridLayout(grid_host)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(3)
        self.base_pane = ImagePane("baseline", grid_host)
        self.run_pane = ImagePane("this run", grid_host)
        self.act_pane = ImagePane("Δ activation", grid_host, colorbar=True)
        self.grad_pane = ImagePane("Δ gradient", grid_host, colorbar=True)
        self.cam_pane = ImagePane("Δ CAM", grid_host, colorbar=True)
        self.input_grad_pane = ImagePane("Δ input gradient", grid_host, colorbar=True)
        grid.addWidget(self.base_pane, 0, 0)
        grid.addWidget(self.run_pane, 0, 1)
        grid.addWidget(self.cam_pane, 0, 2)
        grid.addWidget(self.act_pane, 1, 0)
        grid.addWidget(self.grad_pane, 1, 1)
        grid.addWidget(self.input_grad_pane, 1, 2)
        self.table = QTableWidget(0, 4, split)
        self.table.setHorizontalHeaderLabels(["Class", "Baseline", "This run", "Δ"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        split.addWidget(grid_host)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        self.body.addWidget(split, 1)
        self.status = QLabel("Pin a run as the baseline, then change something and run.", self)
        self.status.setToolTip("Maps are run − baseline, averaged over channels; red = higher now")
        self.status.setWordWrap(True)
        self.body.addWidget(self.status)

        self.baseline: RunView | None = None
        self.baseline_image: np.ndarray | None = None
        self.baseline_choices: dict | None = None
        self.comparison = None  # core.experiments.compare.Comparison
        self.run_view: RunView | None = None
        self.levels: dict[str, float] = {}
        self.maps: dict[str, np.ndarray] = {}
        self.on_result(self.refresh)
        state.selectionChanged.connect(lambda *_: self.redraw())
        state.modelChanged.connect(self.unpin)
        self.clear_button.setEnabled(False)

    # -- baseline -----------------------------------------------------------------------------
    def pin(self) -> bool:
        """Pin the current snapshot as the baseline."""
        snap = self.state.snapshot
        if snap is None:
            self.state.errorRaised.emit("Run the model first: there is no result to pin.")
            return False
        self.baseline = RunView.from_snapshot(snap, run_label(self.state))
        self.baseline_image = snap.input_image
        # What made it, so a saved session can redo the baseline exactly.
        self.baseline_choices = self.state.run_choices()
        self.clear_button.setEnabled(True)
        self.refresh()
        return True

    def unpin(self) -> None:
        self.baseline, self.baseline_image, self.comparison = None, None, None
        self.baseline_choices = None
        self.clear_button.setEnabled(False)
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        snap = self.state.snapshot
        self.comparison = self.run_view = None
        if self.baseline is not None and snap is not None:
            self.run_view = RunView.from_snapshot(snap, run_label(self.state))
            self.comparison = compare_runs(self.baseline, self.run_view)
        self._fill_table()
        self.redraw()

    def _fill_table(self) -> None:
        c = self.comparison
        rows = c.biggest(len(c.classes)) if c is not None else []
        self.table.setRowCount(len(rows))
        for r, d in enumerate(rows):
            cells = (
                d.name or f"class {d.index}",
                f"{d.before:.2%}",
                f"{d.after:.2%}",
                f"{d.delta:+.2%}",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(RIGHT)
                if col == 3 and abs(d.delta) >= 0.005:
                    item.setForeground(QColor(15, 130, 60) if d.delta > 0 else QColor(200, 40, 30))
                self.table.setItem(r, col, item)

    def redraw(self) -> None:
        snap, c = self.state.snapshot, self.comparison
        self.base_pane.set_rgb(self.baseline_image)
        self.run_pane.set_rgb(snap.input_image if snap is not None else None)
        base = self.baseline
        self.base_pane.set_title(f"baseline: {base.label}" if base is not None else "baseline")
        self.run_pane.set_title("this run")
        self.maps = {}
        layer = self.state.selected_layer or ""
        cam_layer = next(iter(c.cams), None) if c is not None else None
        if c is not None:
            for key, a in (
                ("activation", _as_2d(c.activations.get(layer))),
                ("gradient", _as_2d(c.gradients.get(layer))),
                ("cam", c.cams.get(cam_layer) if cam_layer else None),
                ("input_grad", _as_2d(c.input_grad)),
            ):
                if a is not None:
                    self.maps[key] = a
        for key, pane, title in (
            ("activation", self.act_pane, f"Δ activation {_tail(layer)}"),
            ("gradient", self.grad_pane, f"Δ gradient {_tail(layer)}"),
            ("cam", self.cam_pane, f"Δ CAM {_tail(cam_layer or '')}"),
            ("input_grad", self.input_grad_pane, "Δ input gradient"),
        ):
            a = self.maps.get(key)
            same = a is not None and not float(np.nanmax(np.abs(a), initial=0.0)) > 0
            pane.set_title(title + (NO_CHANGE if same else ""))
            if a is None:
                pane.set_rgb(None)
                continue
            # An all-zero difference has no scale: a ±m bar would claim values it does not have.
            m = self.levels[key] = 0.0 if same else self._level(key, a, layer, cam_layer)
            pane.set_values(a, DIVERGING, (-(m or 1.0), m or 1.0))  # zero sits at the centre
            if pane.bar is not None:
                pane.bar.setVisible(not same)
        self._show_status()

    def _level(self, key: str, diff: np.ndarray, layer: str, cam_layer: str | None) -> float:
        """Colour scale ±m: the largest magnitude of the two runs' maps or of their difference.

        Scaling by the maps themselves keeps a tiny but uniform change pale instead of
        saturating the whole pane.
        """
        m = float(np.nanmax(np.abs(diff)))
        for view in (self.baseline, self.run_view):
            if view is None:
                continue
            own = {
                "activation": _as_2d(view.activations.get(layer)),
                "gradient": _as_2d(view.gradients.get(layer)),
                "cam": view.cams.get(cam_layer) if cam_layer else None,
                "input_grad": _as_2d(view.input_grad),
            }[key]
            if own is not None and own.shape == diff.shape:
                m = max(m, float(np.nanmax(np.abs(own))))
        return m or 1.0

    def _show_status(self) -> None:
        c = self.comparison
        if self.baseline is None:
            self.status.setText("Pin a run as the baseline, then change something and run.")
            return
        if c is None:
            self.status.setText(f"Baseline: {self.baseline.label}. Run to compare.")
            return
        top = c.biggest(1)
        moved = ""
        if top:
            d = top[0]
            moved = f" Biggest change: {d.name or d.index} {d.before:.1%} → {d.after:.1%}."
        skipped = f" ({len(c.skipped)} maps not comparable)" if c.skipped else ""
        self.status.setText(
            f"Baseline: {c.baseline_label}  |  this run: {c.run_label}.{moved}{skipped}"
        )

    def rows(self) -> list[tuple[str, float, float, float]]:
        """The delta table as (class, before, after, delta) (tests and export)."""
        c = self.comparison
        if c is None:
            return []
        return [(d.name or str(d.index), d.before, d.after, d.delta) for d in c.biggest(99)]

    # -- figures ------------------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        if self.comparison is None:
            return []
        snap = self.state.snapshot
        panels: list[Panel] = [("baseline", self.baseline_image), ("this run", snap.input_image)]
        for key, a in self.maps.items():
            m = self.levels.get(key, float(np.nanmax(np.abs(a), initial=0.0)))
            rgb = figures.colorize(a, DIVERGING, (-(m or 1.0), m or 1.0))  # the pane's colours
            if not m:  # all zero: no bar, the title says so
                panels.append(figures.Panel(f"Δ {key}{NO_CHANGE}", rgb))
                continue
            panels.append(figures.Panel(f"Δ {key}", rgb, figures.ColorBar(DIVERGING, -m, m)))
        return panels

    def make_arrays(self) -> dict[str, np.ndarray]:
        return {f"diff/{k}": v for k, v in self.maps.items()}

    def settings(self) -> dict:
        c = self.comparison
        if c is None:
            return {}
        return {
            "baseline": c.baseline_label,
            "run": c.run_label,
            "classes": [[d.index, d.name, d.before, d.after] for d in c.classes],
        }
