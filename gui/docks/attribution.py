"""Attribution dock: guided backprop, saliency, SmoothGrad, IG, occlusion… on the current image.

The method list and each method's parameters come from the explainer registry
(``core.methods.explainers``, the attribution records; the form is built from their ``Param``
tables). Run goes through the worker with progress and
cancel; the result is numpy only.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from hookscope.core.jobs.attribution import (
    METHODS,
    AttributionResult,
    attribution_job,
    attribution_params,
)
from hookscope.core.methods import explainers
from hookscope.gui import figures
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.job_control import DockJob
from hookscope.gui.widgets.panes import ImagePane


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


class ParamForm(QWidget):
    """Editors for a method's options, built from its ``core.methods.attribution.Param`` records."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.layer_choices: list[str] = []
        self.editors: dict[str, QWidget] = {}
        self.params: dict[str, object] = {}

    def build(self, params) -> None:
        """One row per option (name, type, default, help, choices)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors, self.params = {}, {p.name: p for p in params}
        for p in params:
            editor = self._editor(p)
            editor.setToolTip(p.help)
            self.editors[p.name] = editor
            self.form.addRow(_label(p.name), editor)

    def _editor(self, p) -> QWidget:
        if p.choices:
            w = QComboBox(self)
            w.addItems([str(c) for c in p.choices])
            w.setCurrentText(str(p.default))
            return w
        if p.name == "layer":
            w = QComboBox(self)
            w.setEditable(True)
            w.addItems(self.layer_choices)
            w.setCurrentText(str(p.default) if p.default else (self.layer_choices or [""])[0])
            w.lineEdit().setPlaceholderText("last convolution")
            w.setMinimumContentsLength(14)
            return w
        if p.type is bool:
            w = QCheckBox(self)
            w.setChecked(bool(p.default))
            return w
        if p.type is int:
            w = QSpinBox(self)
            w.setRange(0, 100_000)
            w.setValue(int(p.default or 0))
            return w
        if p.type is float:
            w = QDoubleSpinBox(self)
            w.setDecimals(3)
            w.setRange(-1e6, 1e6)
            w.setSingleStep(0.05)
            w.setValue(float(p.default or 0.0))
            return w
        w = QLineEdit("" if p.default is None else str(p.default), self)
        w.setPlaceholderText("default")
        return w

    def values(self) -> dict[str, object]:
        """Current values (None = the method's own default)."""
        out: dict[str, object] = {}
        for name, w in self.editors.items():
            p = self.params[name]
            if isinstance(w, QComboBox):
                text = w.currentText().strip()
                out[name] = (p.type(text) if p.type in (int, float) else text) if text else None
            elif isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                out[name] = w.value()
            else:
                out[name] = w.text().strip() or None
        return out

    def set_value(self, name: str, value) -> None:
        """Set one option's editor (tests, restoring settings)."""
        w = self.editors[name]
        if isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
            w.setValue(value)
        else:
            w.setText(str(value))


class AttributionDock(BaseDock):
    """Pixel attributions for the current image and target, on demand."""

    TITLE = "Attribution"
    OBJECT_NAME = "AttributionDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.method_combo = QComboBox(self)
        for key in METHODS:
            self.method_combo.addItem(explainers.get(key).title, key)
        self.method_combo.setToolTip("Attribution method")
        self.method_combo.currentIndexChanged.connect(lambda _: self._on_method(self.method))
        self.add_header_widget(QLabel("Method", self))
        self.add_header_widget(self.method_combo)
        self.run_button = QPushButton("Run", self)
        self.run_button.setToolTip("Compute the attribution for the current image and target")
        self.run_button.clicked.connect(self.run)
        self.add_header_widget(self.run_button)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.add_header_widget(self.cancel_button)

        top = QHBoxLayout()
        self.form = ParamForm(self)
        top.addWidget(self.form)
        top.addStretch(1)
        self.body.addLayout(top)
        panes = QHBoxLayout()
        self.signed_pane = ImagePane("signed (sum over colour channels)", self, colorbar=True)
        self.heat_pane = ImagePane("|attribution| over the input", self, colorbar=True)
        panes.addWidget(self.signed_pane, 1)
        panes.addWidget(self.heat_pane, 1)
        self.body.addLayout(panes, 1)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.body.addWidget(self.status)
        for pane in (self.signed_pane, self.heat_pane):
            pane.hovered.connect(self._on_hover)

        self.result: AttributionResult | None = None
        self.signed_map: np.ndarray | None = None
        self.heat_map: np.ndarray | None = None
        self.overlay_rgb: np.ndarray | None = None
        self.signed_levels = (-1.0, 1.0)
        self.signed_cmap = figures.DIVERGING
        self.figure: list[figures.Panel] = []  # what Save / Copy write: the panes' pictures
        self._stale = False
        self.job = DockJob(state, "attribution", self.run_button, self.cancel_button, self.status)
        state.displayChanged.connect(self._draw)
        state.modelChanged.connect(self._on_model)
        for sig in (state.imageChanged, state.specChanged, state.targetChanged):
            sig.connect(lambda *_: self._mark_stale())
        if METHODS:
            self._on_method(self.method)
            self.status.setText("Press Run to compute the attribution.")
        else:
            self.run_button.setEnabled(False)
            self.status.setText("Attribution methods are not available in this build.")

    # -- running ------------------------------------------------------------------------------
    def _on_method(self, method: str) -> None:
        if not method:
            return
        self.form.layer_choices = self._map_layers()
        self.form.build(attribution_params(method) if method in METHODS else ())

    def _map_layers(self) -> list[str]:
        st = self.state
        layers = list(st.cam_layers) + [n for n in st.layers if n not in st.cam_layers]
        return layers

    @property
    def method(self) -> str:
        """Registry key of the chosen method."""
        return self.method_combo.currentData() or ""

    def set_method(self, key: str) -> None:
        """Choose a method by registry key."""
        i = self.method_combo.findData(key)
        if i >= 0:
            self.method_combo.setCurrentIndex(i)

    def params(self) -> dict[str, object]:
        return self.form.values()

    def run(self) -> int | None:
        """Submit the chosen method to the worker; returns the job id (None if not ready)."""
        st = self.state
        method = self.method
        if not st.ready or not method:
            self.status.setText("Load a model and an image first.")
            return None
        return self.job.submit(
            attribution_job,
            st.loaded,
            st.image,
            method,
            self.params(),
            st.target,
            spec=st.input_spec,
            status=f"Running {method}…",
            on_result=self._on_result,
        )

    def _on_result(self, result: AttributionResult) -> None:
        self.result, self._stale = result, False
        self.signed_map, self.heat_map = result.map2d, result.heat
        bar = figures.attribution_bar(result.map2d, result.signed)
        self.signed_cmap, self.signed_levels = bar.cmap, bar.levels
        self._draw()
        target = result.target_name or result.target
        params = ", ".join(f"{k}={v}" for k, v in result.params.items())
        what = f"class {target} ({result.target})" if result.target is not None else ""
        self.status.setText(
            f"{result.method} for {what or result.target_label}"
            + (f" · {params}" if params else "")
            + f" · {result.seconds:.2f} s"
        )

    def _mark_stale(self) -> None:
        if self.result is not None and not self._stale:
            self._stale = True
            self.status.setText(self.status.text() + " — out of date: press Run")

    def _on_model(self) -> None:
        self.result = self.signed_map = self.heat_map = self.overlay_rgb = None
        self.figure = []
        self.signed_pane.set_rgb(None)
        self.heat_pane.set_rgb(None)
        self._on_method(self.method)
        self.status.setText("Press Run to compute the attribution.")

    # -- drawing ------------------------------------------------------------------------------
    def _draw(self) -> None:
        if self.result is None:
            return
        r, st = self.result, self.state
        # One renderer: the panes show what Save, Copy and the CLI's ``attribute`` write.
        self.figure = panels = figures.attribution_figure(r, st.colormap, st.alpha)
        self.signed_pane.set_values(self.signed_map, self.signed_cmap, self.signed_levels)
        kind = "signed (sum" if r.signed else "magnitude (max"
        self.signed_pane.set_title(f"{r.title}: {kind} over colour channels)")
        self.overlay_rgb = panels[-1].rgb
        self.heat_pane.set_rgb(self.overlay_rgb)
        self.heat_pane.set_title(f"{r.title}: |attribution| over the input")
        self.heat_pane.set_bar(panels[-1].bar.cmap, panels[-1].bar.levels)

    def _on_hover(self, y: float, x: float) -> None:
        if self.signed_map is None or np.isnan(y):
            return
        v = self.signed_map[int(y), int(x)]
        self.signed_pane.setToolTip(f"(y {int(y)}, x {int(x)}) · {v:.4g}")
        self.heat_pane.setToolTip(f"(y {int(y)}, x {int(x)}) · {v:.4g}")

    # -- figures and export -------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        return list(self.figure) if self.result is not None else []

    def make_arrays(self) -> dict[str, np.ndarray]:
        """Raw data behind the figure (for File ▸ Export all)."""
        if self.result is None:
            return {}
        return {
            "attribution/raw": self.result.attribution,
            "attribution/signed": self.signed_map,
            "attribution/heat": self.heat_map,
        }

    def settings(self) -> dict:
        """Choices behind the figure (for File ▸ Export all)."""
        r = self.result
        return {
            "method": r.method if r else self.method,
            "params": dict(r.params) if r else self.params(),
            "target": r.target if r else self.state.target,
            "target_name": r.target_name if r else None,
            "out_of_date": self._stale,
        }
