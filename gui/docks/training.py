"""Training dock: a run recorded by ``hookscope.watch``, followed live.

Gradient norms of every layer over steps (log colour), the loss, the selected layer's
activation statistics, the diagnosis (a click selects its layer and step) and the probe
image's map over steps. Reading the run happens in the worker; the dock only shows
:class:`~hookscope.core.training.view.TrainingView`.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
)

from hookscope.core.display.colormaps import colorize
from hookscope.core.reporting import per_batch
from hookscope.core.training.view import TrainingView, read_view
from hookscope.gui import filedialogs
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.qtutil import rgb_to_pixmap
from hookscope.gui.widgets.panes import BACKGROUND, TEXT
from hookscope.gui.widgets.picture import FittedPicture

FOLLOW_MS = 2000
"""How often a followed run is checked for new chunks."""
STAT_PENS = {
    "act_mean": (66, 133, 244),
    "act_std": (15, 157, 88),
    "act_zero": (219, 68, 55),
    "act_saturated": (244, 160, 0),
}
STAT_NAMES = {"act_mean": "mean", "act_std": "std", "act_zero": "zeros", "act_saturated": "sat."}


@per_batch  # reads files only: never holds the model, so clicks never wait for it
def _read_job(reporter, path: str, known):
    reporter.progress(0, 0, f"Reading {path}…")
    return read_view(path, known)


class TrainingDock(BaseDock):
    """Shows one watched run; ``open_run(path)`` picks it, Follow reads new chunks."""

    TITLE = "Training"
    OBJECT_NAME = "TrainingDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.view: TrainingView | None = None
        self.path: str | None = None
        self.layer: str | None = None
        self.step: int | None = None
        self._reading = False
        self._build_header()
        self._build_plots()
        self._build_lists()
        self.timer = QTimer(self)
        self.timer.setInterval(FOLLOW_MS)
        self.timer.timeout.connect(self.refresh)

    # -- parts ---------------------------------------------------------------------------------
    def _build_header(self) -> None:
        self.open_button = QPushButton("Open run…", self)
        self.open_button.setToolTip("A folder written by hookscope.watch (it holds run.json)")
        self.open_button.clicked.connect(self.choose_run)
        self.add_header_widget(self.open_button)
        self.follow = QCheckBox("Follow", self)
        self.follow.setToolTip(f"Read new chunks every {FOLLOW_MS // 1000} s while training runs")
        self.follow.setChecked(True)
        self.follow.toggled.connect(self._follow_changed)
        self.add_header_widget(self.follow)
        self.summary = QLabel("Open a run written by hookscope.watch (Open run…).", self)
        self.summary.setWordWrap(True)
        self.body.addWidget(self.summary)

    def _plot(self, left: str, bottom: str = "step") -> pg.PlotWidget:
        plot = pg.PlotWidget(self, background=BACKGROUND)
        plot.setLabel("left", left, color=TEXT)
        plot.setLabel("bottom", bottom, color=TEXT)
        plot.setMenuEnabled(False)
        plot.setMinimumHeight(120)
        return plot

    def _build_plots(self) -> None:
        grid = QGridLayout()
        self.heat = self._plot("layer")
        self.heat.invertY(True)
        self.heat_image = pg.ImageItem()
        self.heat.addItem(self.heat_image)
        self.heat.scene().sigMouseClicked.connect(self._heat_clicked)
        self.heat_line = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255), width=1))
        self.heat_row = pg.InfiniteLine(angle=0, pen=pg.mkPen((255, 255, 255), width=1))
        self.loss_plot = self._plot("loss")
        self.stats_plot = self._plot("activation")
        grid.addWidget(self.heat, 0, 0, 2, 1)
        grid.addWidget(self.loss_plot, 0, 1)
        grid.addWidget(self.stats_plot, 1, 1)
        # Even columns: at 1000×700 the statistics' title (layer and key) was cut at 3:2.
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self.body.addLayout(grid, 4)

    def _build_lists(self) -> None:
        self.findings = QListWidget(self)
        self.findings.setWordWrap(True)
        self.findings.currentItemChanged.connect(self._finding_picked)
        self.probes = FittedPicture("No probe maps in this run.", self)
        self.probes.setMinimumSize(96, 64)
        self.probe_caption = QLabel("", self)
        self.probe_caption.setWordWrap(True)
        # Stacked, not side by side: the strip is wide (steps in columns) and the findings are
        # sentences; beside each other at 1000×700 the maps shrank to ~30 px and both wrapped.
        self.body.addWidget(QLabel("Diagnosis (click: its layer and step)", self))
        self.body.addWidget(self.findings, 2)
        self.body.addWidget(self.probe_caption)
        self.body.addWidget(self.probes, 2)

    # -- reading -------------------------------------------------------------------------------
    def open_run(self, path: str) -> None:
        """Show the run at ``path`` (read in the worker)."""
        self.path, self.view, self.layer, self.step = str(path), None, None, None
        self.summary.setText(f"Reading {path}…")
        self.refresh(force=True)
        self._follow_changed(self.follow.isChecked())

    def choose_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a watched run", filedialogs.last_dir())
        if path:
            filedialogs.remember(path)
            self.open_run(path)

    def _follow_changed(self, on: bool) -> None:
        if on and self.path:
            self.timer.start()
        else:
            self.timer.stop()

    def refresh(self, force: bool = False) -> None:
        """Read the run again if it has new files (or always with ``force``)."""
        if not self.path or self._reading:
            return
        known = None if force or self.view is None else self.view.files
        self._reading = True
        self.state.worker.submit(
            _read_job,
            self.path,
            known,
            kind="training",
            on_result=self._on_view,
            on_error=self._on_error,
        )

    def _on_error(self, message: str) -> None:
        self._reading = False
        self.summary.setText(message)
        self.timer.stop()

    def _on_view(self, view: TrainingView | None) -> None:
        self._reading = False
        if view is None or view.path != self.path:
            return  # nothing new, or a run opened since
        self.view = view
        if self.layer not in view.act and view.findings:
            self.layer = view.findings[0].layer or None
        if self.layer not in view.act:
            self.layer = (view.layers or view.act_layers or (None,))[0]
        self._show()

    # -- showing -------------------------------------------------------------------------------
    def _show(self) -> None:
        v = self.view
        status = v.info.get("status", "?")
        found = len(v.findings)
        last = int(v.loss_steps[-1]) if len(v.loss_steps) else None
        self.summary.setText(
            f"{v.path}: {v.info.get('model', '?')}, {len(v.layers)} layers, "
            f"{len(v.steps)} records up to step {last}, {status}; "
            f"{found} finding{'s' if found != 1 else ''}."
            + "".join(f" {n}" for n in (*v.notes, v.info.get("probe_note") or ""))
        )
        self._show_heat()
        self.loss_plot.clear()
        if len(v.loss):
            self.loss_plot.plot(v.loss_steps, v.loss, pen=pg.mkPen((66, 133, 244), width=2))
        self._show_findings()
        self._show_probes()
        self._show_layer()

    def _show_heat(self) -> None:
        v = self.view
        g = v.grad_log
        finite = g[np.isfinite(g)]
        if not finite.size:
            self.heat_image.clear()
            return
        lo, hi = float(finite.min()), float(finite.max())
        rgb = colorize(g, "viridis", (lo, hi if hi > lo else lo + 1))
        self.heat_image.setImage(np.ascontiguousarray(rgb.transpose(1, 0, 2)), levels=None)
        k = max(1, int(np.ceil(len(v.layers) / 16)))
        self.heat.getAxis("left").setTicks(
            [[(i + 0.5, n) for i, n in enumerate(v.layers) if i % k == 0]]
        )
        j = max(1, int(np.ceil(len(v.steps) / 8)))
        self.heat.getAxis("bottom").setTicks(
            [[(i + 0.5, str(int(s))) for i, s in enumerate(v.steps) if i % j == 0]]
        )
        # The range goes in the title: on the vertical axis a long label was cut at 1000×700.
        self.heat.setLabel("left", "layer")
        self.heat.setTitle(f"log10 grad norm {lo:.1f} to {hi:.1f}", size="9pt")

    def _show_findings(self) -> None:
        self.findings.blockSignals(True)
        self.findings.clear()
        for f in self.view.findings:
            item = QListWidgetItem(f.sentence)
            item.setData(Qt.ItemDataRole.UserRole, (f.layer, f.step))
            item.setToolTip(f.hook or f.sentence)
            self.findings.addItem(item)
        if not self.view.findings:
            self.findings.addItem("Nothing to report: no rule of the diagnosis fired.")
        self.findings.blockSignals(False)

    def _show_probes(self) -> None:
        v = self.view
        if v.probe_strip is None:
            self.probes.set_pixmap(None)
            self.probe_caption.setText("")
            return
        self.probes.set_pixmap(rgb_to_pixmap(v.probe_strip))
        steps = ", ".join(map(str, v.probe_steps))
        self.probe_caption.setText(
            f"Probe maps at layer {v.probe_layer}: {v.probe_rows} image(s) in rows, "
            f"steps {steps} in columns"
        )

    def _show_layer(self) -> None:
        """The selected layer's activation statistics and its place on the heat map."""
        v, layer = self.view, self.layer
        self.stats_plot.clear()
        names = []
        stats = v.act.get(layer, {}) if layer else {}
        for key, values in stats.items():
            if np.isfinite(values).any():
                pen = pg.mkPen(STAT_PENS[key], width=2)
                self.stats_plot.plot(v.act_steps, values, pen=pen, name=STAT_NAMES[key])
                names.append(
                    f"<span style='color:#{bytes(STAT_PENS[key]).hex()}'>{STAT_NAMES[key]}</span>"
                )
        # The key sits in the title, where it never covers a curve (a legend did).
        # The layer goes in the title too: a long left label was cut on a short plot.
        name = str(layer) if len(str(layer)) <= 16 else "…" + str(layer)[-15:]
        head = f"{name}: " if layer else ""
        self.stats_plot.setTitle(head + " · ".join(names), size="9pt")
        self.stats_plot.setLabel("left", "activation")
        for line in (self.heat_row, self.heat_line):
            if line.scene() is not None:
                self.heat.removeItem(line)
        row = v.layer_index(layer) if layer else None
        if row is not None:
            self.heat_row.setValue(row + 0.5)
            self.heat.addItem(self.heat_row)
        if self.step is not None and len(v.steps):
            col = int(np.searchsorted(v.steps, self.step))
            self.heat_line.setValue(min(col, len(v.steps) - 1) + 0.5)
            self.heat.addItem(self.heat_line)

    def select(self, layer: str | None, step: int | None = None) -> None:
        """Show ``layer``'s statistics and mark ``step`` (a finding or a heat-map click)."""
        self.layer, self.step = layer, step
        if self.view is not None:
            self._show_layer()

    def _finding_picked(self, item, _previous=None) -> None:
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if data:
            self.select(data[0] or self.layer, data[1])

    def _heat_clicked(self, event) -> None:
        v = self.view
        if v is None or not len(v.steps):
            return
        pos = self.heat.getPlotItem().vb.mapSceneToView(event.scenePos())
        col, row = int(np.floor(pos.x())), int(np.floor(pos.y()))
        if 0 <= row < len(v.layers) and 0 <= col < len(v.steps):
            self.select(v.layers[row], int(v.steps[col]))

    # -- figures -------------------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        v = self.view
        if v is None:
            return []
        g = v.grad_log
        finite = g[np.isfinite(g)]
        panels = []
        if finite.size:
            rgb = colorize(g, "viridis", (float(finite.min()), float(finite.max()) + 1e-9))
            big = np.repeat(np.repeat(rgb, 8, axis=0), 8, axis=1)
            panels.append(("log10 gradient norm, layers × records", big))
        if v.probe_strip is not None:
            panels.append((f"probe map at {v.probe_layer} over steps", v.probe_strip))
        return panels

    def make_arrays(self) -> dict[str, np.ndarray]:
        v = self.view
        if v is None:
            return {}
        return {"grad_log10": v.grad_log, "steps": v.steps, "loss": v.loss}
