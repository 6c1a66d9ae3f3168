"""Sanity check dock: cascading weight randomisation, Spearman correlation per step.

A saliency method that explains the model should stop looking like itself once the weights
are random (Adebayo et al., 2018). The run changes the weights in the worker and puts the real
ones back; the dock says so, with the checksum that proves it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMenu, QPushButton, QToolButton

from hookscope.core.experiments.sanity import Y_RANGE
from hookscope.core.jobs.experiments import sanity_job
from hookscope.core.methods import explainers
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.job_control import DockJob
from hookscope.gui.widgets.panes import BACKGROUND, TEXT

PENS = ((66, 133, 244), (219, 68, 55), (15, 157, 88), (244, 160, 0))
METHODS = tuple(k for k, r in explainers.EXPLAINERS.items() if r.kind != explainers.CAM)
"""Methods besides the current CAM (the registry's attributions and baselines)."""
DEFAULT_CHECKED = ("guided-backprop",)


class SanityDock(BaseDock):
    """Run cascading randomisation for the current CAM method and the checked methods."""

    TITLE = "Sanity check"
    OBJECT_NAME = "SanityDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.methods_button = QToolButton(self)
        self.methods_button.setText("+ methods")
        self.methods_button.setToolTip(
            "Methods checked beside the current CAM (the slow ones repeat for every step)"
        )
        self.methods_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.methods_button)
        self.method_actions: dict[str, QAction] = {}
        for name in METHODS:
            rec = explainers.get(name)
            action = QAction(f"{name} ({rec.cost})" if rec.slow else name, menu)
            action.setCheckable(True)
            action.setChecked(name in DEFAULT_CHECKED)
            menu.addAction(action)
            self.method_actions[name] = action
        self.methods_button.setMenu(menu)
        self.add_header_widget(self.methods_button)
        self.run_button = QPushButton("Run", self)
        self.run_button.setToolTip(
            "Randomise the layers from the output down and compare each map with the original"
        )
        self.run_button.clicked.connect(self.run)
        self.add_header_widget(self.run_button)
        self.cancel_button = QPushButton("Cancel", self)
        self.add_header_widget(self.cancel_button)

        self.plot = pg.PlotWidget(self, background=BACKGROUND)
        self.plot.setLabel("left", "Spearman rank correlation with the original map", color=TEXT)
        self.plot.setLabel("bottom", "randomised down to (cumulative, output first)", color=TEXT)
        self.plot.setYRange(*Y_RANGE)
        self.plot.showGrid(y=True, alpha=0.3)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setMenuEnabled(False)
        self.body.addWidget(self.plot, 1)
        self.note = QLabel(
            "A map that stays the same after randomisation does not explain the model.", self
        )
        self.note.setWordWrap(True)
        self.body.addWidget(self.note)

        self.report = None  # core.jobs.experiments.SanityReport
        self.curves: dict[str, np.ndarray] = {}
        self.job = DockJob(
            state,
            "sanity",
            self.run_button,
            self.cancel_button,
            self.note,
            cancelled_text="Cancelled; the real weights were restored.",
        )
        state.modelChanged.connect(self._clear)

    def methods(self) -> tuple[str, ...]:
        """What the CAM panel shows (the side-by-side methods when on) and the checked methods,
        each once."""
        out = self.state.shown_methods()
        out += [k for k, a in self.method_actions.items() if a.isChecked()]
        return tuple(dict.fromkeys(out))

    def run(self) -> int | None:
        st = self.state
        if not st.ready:
            return None
        methods = self.methods()
        if not methods:
            self.note.setText("Tick a CAM layer or check a method to have something to check.")
            return None
        return self.job.submit(
            sanity_job,
            st.loaded,
            st.image,
            methods,
            (st.cam_layers or [None])[0],
            st.target,
            spec=st.input_spec,
            status=f"Randomising layer by layer for {', '.join(methods)}… (Cancel stops)",
            on_result=self._on_result,
        )

    def _clear(self) -> None:
        self.report = None
        self.curves = {}
        self.plot.clear()

    def _on_result(self, report) -> None:
        self.report = report
        r = report.result
        self.plot.clear()
        self.curves = {}
        x = np.arange(len(r.steps))
        for i, name in enumerate(report.methods):
            y = np.asarray(r.correlations[name], dtype=np.float64)
            self.curves[name] = y
            self.plot.plot(
                x,
                y,
                pen=pg.mkPen(PENS[i % len(PENS)], width=2),
                symbol="o",
                symbolSize=6,
                symbolBrush=PENS[i % len(PENS)],
                name=name,
            )
        self.plot.addLine(y=0, pen=pg.mkPen((150, 150, 150), style=pg.QtCore.Qt.PenStyle.DashLine))
        # Every k-th step name, so long models stay readable.
        k = max(1, int(np.ceil(len(r.steps) / 12)))
        ticks = [(int(i), _short(s)) for i, s in enumerate(r.steps) if i % k == 0]
        self.plot.getAxis("bottom").setTicks([ticks])
        self.plot.setXRange(-0.5, len(r.steps) - 0.5, padding=0.02)
        self.plot.setYRange(*r.y_range(), padding=0)  # every point inside, however low
        restored = (
            "The real weights were restored afterwards (state_dict checksum unchanged)."
            if report.restored
            else "Warning: the weights differ from before the run (checksum changed)."
        )
        target = report.target_name or r.target
        verdicts = " ".join(r.verdict(m) for m in report.methods)
        self.note.setText(f"Explaining {target}; {len(r.steps)} steps. {restored}\n{verdicts}")

    # -- figures ------------------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        return super().make_panels() if self.report is not None else []

    def make_arrays(self) -> dict[str, np.ndarray]:
        return {f"correlation/{k}": v for k, v in self.curves.items()}

    def settings(self) -> dict:
        if self.report is None:
            return {}
        return {
            "steps": list(self.report.result.steps),
            "methods": list(self.report.methods),
            "restored": self.report.restored,
            "verdicts": {m: self.report.result.verdict(m) for m in self.report.methods},
        }


def _short(name: str) -> str:
    """``features.block3.conv`` → ``block3.conv`` (the tail that tells steps apart)."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else name
