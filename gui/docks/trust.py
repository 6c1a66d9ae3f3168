"""Trust dock: how faithful each method's map is for this image, next to baselines.

Runs ``core.jobs.evaluate.evaluate_job`` in the worker's long lane (progress, cancel) for the
current image, target and CAM layer; each method's row appears as soon as it is scored. The
table is ranked by ``insertion − deletion`` (RISE areas: a faithful map's top pixels alone
bring the class back, and removing them takes it away); a method that does not beat the
``random`` or ``sobel`` baseline says so. Clicking a row shows its deletion and insertion
curves, with the random baseline's dashed for reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.jobs.evaluate import (
    BETTER,
    DEFAULT_METHODS,
    SCORE,
    EvaluateSettings,
    default_methods,
    evaluate_job,
    method_names,
)
from hookscope.core.methods import explainers
from hookscope.core.methods.metrics import DEFAULT_STEPS, METRICS, SCORE_METRIC, SCORE_PARTS
from hookscope.gui import filedialogs
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.job_control import DockJob
from hookscope.gui.widgets.panes import BACKGROUND, TEXT

GOOD = (15, 157, 88)
BAD = (219, 68, 55)
NEUTRAL = (66, 133, 244)
BASELINE = (160, 160, 160)
FINDING = (180, 95, 6)
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
VERDICT_COL = 2
"""The table's columns: method, score, verdict, then the metrics."""

HEADERS = {k: m.header for k, m in {SCORE_METRIC.name: SCORE_METRIC, **METRICS}.items()}
"""Table columns (metric field → header), score first (``core.methods.metrics.METRICS``)."""


def mask_beside(image_path: str | None) -> Path | None:
    """``name_mask.png`` next to the image, as the bundled samples have, or None."""
    if not image_path:
        return None
    p = Path(image_path)
    m = p.with_name(f"{p.stem}_mask.png")
    return m if m.is_file() and m != p else None


class TrustDock(BaseDock):
    """Methods menu, steps, Run / Cancel, CSV; the ranked table, score bars and curves."""

    TITLE = "Trust"
    OBJECT_NAME = "TrustDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.methods_button = QToolButton(self)
        self.methods_button.setText("Methods")
        self.methods_button.setToolTip("Methods to score; random and sobel are the baselines")
        self.methods_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.methods_button)
        self.method_actions: dict[str, QAction] = {}
        for name in method_names():
            action = QAction(name, menu)
            action.setCheckable(True)
            action.setChecked(name in DEFAULT_METHODS)
            if explainers.get(name).kind == explainers.BASELINE:
                action.setText(f"{name} (baseline)")
            menu.addAction(action)
            self.method_actions[name] = action
        self.methods_button.setMenu(menu)
        self.add_header_widget(self.methods_button)
        self.steps_box = QSpinBox(self)
        self.steps_box.setRange(4, 1024)
        self.steps_box.setValue(DEFAULT_STEPS)
        self.steps_box.setPrefix("steps ")
        self.steps_box.setToolTip("Deletion / insertion steps (forward passes per curve)")
        self.add_header_widget(self.steps_box)
        self.run_button = QPushButton("Run", self)
        self.run_button.setToolTip(
            "Score every checked method's map for this image, target and CAM layer"
        )
        self.run_button.clicked.connect(self.run)
        self.add_header_widget(self.run_button)
        self.cancel_button = QPushButton("Cancel", self)
        self.add_header_widget(self.cancel_button)
        self.csv_action = QAction("CSV…", self)
        self.csv_action.setToolTip("Save the table as CSV")
        self.csv_action.triggered.connect(lambda: self.save_csv())
        self.csv_action.setEnabled(False)
        csv_button = QToolButton(self)
        csv_button.setDefaultAction(self.csv_action)
        csv_button.setAutoRaise(True)
        self.add_header_widget(csv_button)

        self.finding = QLabel("", self)
        self.finding.setWordWrap(True)
        self.finding.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.finding.setStyleSheet(f"color: rgb{FINDING};")
        self.finding.setVisible(False)
        self.body.addWidget(self.finding)
        split = QSplitter(Qt.Orientation.Vertical, self)
        self.table = QTableWidget(0, 0, split)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.itemSelectionChanged.connect(self._draw_curves)
        plots = QSplitter(Qt.Orientation.Horizontal, split)
        self.bars_plot = pg.PlotWidget(plots, background=BACKGROUND)
        self.bars_plot.setLabel("bottom", "insertion − deletion ↑", color=TEXT)
        self.bars_plot.showGrid(x=True, alpha=0.3)
        self.bars_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.bars_plot.getPlotItem().invertY(True)  # best at the top, as in the table
        self.bars_plot.setMenuEnabled(False)
        self.bars_plot.setMouseEnabled(False, False)
        plots.addWidget(self.bars_plot)
        plots.addWidget(self._make_curves(plots))
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setSizes([300, 340])
        plots.setSizes([220, 300])
        self.body.addWidget(split, 1)
        self.summary = QLabel(
            f"Run to score each method's map. Ranked by {SCORE}; a map must beat the random "
            "and sobel baselines to be worth believing.",
            self,
        )
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.summary)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.body.addWidget(self.status)

        self.report = None  # core.jobs.evaluate.TrustReport
        self.order: list[str] = []
        self.legend_entries: list[str] = []  # the curves' legend, as plain text
        self._mask: Path | None = None  # the mask file of the last run, if any
        self.job = DockJob(
            state, "trust", self.run_button, self.cancel_button, self.status, "Cancelled."
        )
        state.modelChanged.connect(self.clear)
        state.modelChanged.connect(self._fit_methods)
        self._fit_methods()
        state.imageChanged.connect(self._stale)
        state.targetChanged.connect(lambda _: self._stale())

    def _make_curves(self, parent) -> QWidget:
        """The deletion / insertion plot, its legend in a wrapping line under it: a legend
        over the plot hid a third of the curves, one laid out in the plot was cut when narrow."""
        box = QWidget(parent)
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.curves_plot = pg.PlotWidget(box, background=BACKGROUND)
        self.curves_plot.setLabel("left", "p(target)", color=TEXT)
        self.curves_plot.setLabel("bottom", "share of pixels removed / inserted", color=TEXT)
        self.curves_plot.showGrid(x=True, y=True, alpha=0.3)
        self.curves_plot.setMenuEnabled(False)
        self.curves_plot.setYRange(0, 1.02)
        self.curves_legend = QLabel("", box)
        self.curves_legend.setWordWrap(True)
        self.curves_legend.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.curves_plot, 1)
        lay.addWidget(self.curves_legend)
        return box

    # -- running ------------------------------------------------------------------------------
    def methods(self) -> list[str]:
        """The checked methods, in menu order."""
        return [k for k, a in self.method_actions.items() if a.isChecked()]

    def _fit_methods(self) -> None:
        """The transformer methods offered and checked exactly on models they can explain."""
        wanted = set(default_methods(bool(self.state.transformer_blocks())))
        for name, action in self.method_actions.items():
            if explainers.get(name).kind == explainers.TRANSFORMER:
                action.setEnabled(name in wanted)
                action.setChecked(name in wanted)

    def set_methods(self, names) -> None:
        for k, a in self.method_actions.items():
            a.setChecked(k in names)

    def layer(self) -> str | None:
        st = self.state
        return (st.cam_layers or [None])[0]

    def run(self) -> int | None:
        st = self.state
        if not st.ready:
            return None
        methods = self.methods()
        layer = self.layer()
        if not layer:
            methods = [m for m in methods if explainers.get(m).kind != explainers.CAM]
        if not methods:
            self.status.setText("Tick a CAM layer (or check an attribution) to have maps to score.")
            return None
        mask = mask_beside(st.image_path) if not getattr(st, "image_edits", None) else None
        self._mask = mask
        settings = EvaluateSettings(tuple(methods), layer, st.target, steps=self.steps_box.value())
        return self.job.submit(
            evaluate_job,
            st.loaded,
            st.image,
            settings,
            mask,
            spec=st.input_spec,
            status=f"Scoring {len(methods)} maps on {layer or 'the input'}… (Cancel stops)",
            on_result=self._on_result,
            on_partial=self._on_partial,
        )

    def clear(self) -> None:
        self.report = None
        self.order = []
        self.csv_action.setEnabled(False)
        self.table.setRowCount(0)
        self.finding.setText("")
        self.finding.setVisible(False)
        self.bars_plot.clear()
        self.curves_plot.clear()
        self.curves_legend.setText("")

    def _stale(self) -> None:
        if self.report is not None:
            self.status.setText("The image or target changed: Run again to score it.")

    def _on_partial(self, report) -> None:
        """A method's scores are in: its row joins the table, ranked with the ones so far."""
        keep = self.selected()
        self.report = report
        self.order = report.ranking()
        self._fill_table()
        self._draw_bars()
        self.table.selectRow(self.order.index(keep) if keep in self.order else 0)
        self._draw_curves()

    def _on_result(self, report) -> None:
        self.report = report
        self.order = report.ranking()
        self.csv_action.setEnabled(True)
        self._fill_table()
        self._draw_bars()
        if self.order:
            self.table.selectRow(0)
        self._draw_curves()
        target = report.target_name or report.target
        mask = self._mask
        extra = f"; pointing and energy against {mask.name}" if mask else ""
        self.status.setText(
            f"Explaining {target} (p = {report.base_prob:.3f}) on {report.layer or 'the input'}; "
            f"{report.steps} steps{extra}. " + " ".join(report.notes)
        )

    # -- table, bars, curves ------------------------------------------------------------------
    def columns(self) -> list[str]:
        mask = self.report is not None and self.report.has_mask
        shown = [k for k, m in METRICS.items() if mask or not m.needs_mask]
        # The score's own parts next to it, the other metrics after in their table order.
        return [SCORE_METRIC.name, *SCORE_PARTS, *(k for k in shown if k not in SCORE_PARTS)]

    def _fill_table(self) -> None:
        """One row per method, best first: method, score, verdict, then the metrics."""
        r = self.report
        cols = self.columns()
        self.table.clear()
        self.table.setColumnCount(len(cols) + 2)
        heads = [f"{HEADERS[c]} {'↓' if BETTER[c] == 'lower' else '↑'}" for c in cols]
        self.table.setHorizontalHeaderLabels(["method", heads[0], "verdict", *heads[1:]])
        self.table.setRowCount(len(self.order))
        best = r.best()
        digits = r.decimals()  # enough for the column's values to read apart
        for row, name in enumerate(self.order):
            m = r.methods[name]
            fails = not m.baseline and bool(r.baselines_beating(name))
            values = [r.cell(name, c, digits) for c in cols]
            if m.baseline:
                verdict = "baseline"
            elif fails:
                verdict = f"does not beat {' or '.join(r.baselines_beating(name))}"
            else:
                verdict = "best" if name == best else "beats baselines"
            label = f"{name} (baseline)" if m.baseline else name
            cells = [label, values[0], verdict, *values[1:]]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col not in (0, VERDICT_COL):
                    item.setTextAlignment(RIGHT)
                if m.baseline:
                    item.setForeground(QColor(*BASELINE))
                    f = QFont(item.font())
                    f.setItalic(True)
                    item.setFont(f)
                elif col == VERDICT_COL:
                    item.setForeground(QColor(*(BAD if fails else GOOD)))
                if name == best and col in (0, VERDICT_COL):
                    f = QFont(item.font())
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.summary.setText(r.summary())
        found = " ".join(r.findings())
        self.finding.setText(found)
        self.finding.setVisible(bool(found))

    def colour(self, name: str) -> tuple[int, int, int]:
        r = self.report
        m = r.methods[name]
        if m.baseline:
            return BASELINE
        if r.baselines_beating(name):
            return BAD
        return GOOD if name == r.best() else NEUTRAL

    def _draw_bars(self) -> None:
        """Horizontal bars of the score, best at the top; baselines grey, failing methods red."""
        self.bars_plot.clear()
        r = self.report
        if r is None or not self.order:
            return
        scores = np.array([r.methods[k].score for k in self.order], dtype=np.float64)
        brushes = [pg.mkBrush(*self.colour(k)) for k in self.order]
        n = len(scores)
        self.bars_plot.addItem(
            pg.BarGraphItem(
                x0=np.zeros(n), y=np.arange(n), width=scores, height=0.7, brushes=brushes, pen=None
            )
        )
        self.bars_plot.getAxis("left").setTicks([list(enumerate(self.order))])
        self.bars_plot.setYRange(-0.6, n - 0.4, padding=0)
        lo, hi = min(0.0, float(scores.min())), max(0.0, float(scores.max()))
        span = (hi - lo) or 1.0
        self.bars_plot.setXRange(lo - 0.02 * span, hi + 0.05 * span, padding=0)

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or not self.order:
            return None
        i = rows[0].row()
        return self.order[i] if 0 <= i < len(self.order) else None

    def _draw_curves(self) -> None:
        """The selected method's deletion and insertion curves, the random baseline's dashed."""
        self.curves_plot.clear()
        self.curves_legend.setText("")
        self.legend_entries: list[str] = []
        r = self.report
        name = self.selected()
        if r is None or name is None:
            return
        m = r.methods[name]
        x = np.linspace(0, 1, len(m.deletion_curve))
        digits = r.decimals()
        pairs = [(m, name, Qt.PenStyle.SolidLine)]
        if "random" in r.methods and name != "random":
            pairs.append((r.methods["random"], "random", Qt.PenStyle.DashLine))
        html = []
        for mm, label, style in pairs:
            solid = style == Qt.PenStyle.SolidLine
            for part, colour, curve in (
                ("deletion", BAD, mm.deletion_curve),
                ("insertion", GOOD, mm.insertion_curve),
            ):
                pen = pg.mkPen(colour, width=2 if solid else 1, style=style)
                self.curves_plot.plot(x, curve, pen=pen)
                text = f"{label} {part[:3]} {r.cell(label, part, digits)}"
                self.legend_entries.append(text)
                mark = "━━" if solid else "╍╍"
                html.append(
                    f"<span style='color: rgb{colour}'>{mark}</span>&nbsp;"
                    + text.replace(" ", "&nbsp;")
                )
        # Entries break between one another, never inside: the line wraps in a narrow dock.
        self.curves_legend.setText(" &nbsp; ".join(html))
        self.curves_plot.setTitle(name, color=TEXT, size="9pt")
        self.summary.setText(f"{r.summary()} Selected: {r.verdict(name)}")

    # -- export -------------------------------------------------------------------------------
    def save_csv(self, path: str | Path | None = None) -> Path | None:
        """Write the table (ranking order) as CSV; asks for a path when none is given."""
        if self.report is None:
            return None
        if path is None:
            path = filedialogs.save_file(self, "Save the Trust table", "trust.csv", "CSV (*.csv)")
            if not path:
                return None
        path = Path(path)
        try:
            path.write_text(self.report.to_csv(), encoding="utf-8")
        except OSError as exc:
            self.state.errorRaised.emit(f"Could not save {path.name}: {exc.strerror or exc}.")
            return None
        self.state.statusMessage.emit(f"Saved {path}")
        return path

    def make_panels(self) -> list[Panel]:
        return super().make_panels() if self.report is not None else []

    def make_arrays(self) -> dict[str, np.ndarray]:
        r = self.report
        if r is None:
            return {}
        out = {}
        for k, m in r.methods.items():
            out[f"deletion/{k}"] = m.deletion_curve
            out[f"insertion/{k}"] = m.insertion_curve
            out[f"map/{k}"] = r.maps[k]
        return out

    def settings(self) -> dict:
        r = self.report
        if r is None:
            return {}
        return {
            **r.to_json(),
            "layer": r.layer,
            "steps": r.steps,
            "score": SCORE,
            "ranking": self.order,
            "best": r.best(),
            "summary": r.summary(),
            "findings": r.findings(),
        }
