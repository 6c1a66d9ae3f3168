"""Gradients dock: gradient wrt the selected layer output, the input gradient, param-grad norms."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.display import mosaic as mz
from hookscope.gui import figures
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.layer_picker import LayerPicker
from hookscope.gui.widgets.mosaic import FeatureView
from hookscope.gui.widgets.panes import ImagePane

RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
UNSIGNED_CMAP = figures.UNSIGNED_CMAP


class GradientsDock(BaseDock):
    """What flowed back into the selected layer, into the input, and into the parameters."""

    TITLE = "Gradients"
    OBJECT_NAME = "GradientsDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.picker = LayerPicker(state, self)
        self.add_header_widget(self.picker)
        self.header.setStretch(0, 1)

        split = QSplitter(Qt.Orientation.Vertical, self)
        self.view = FeatureView(split, signed=True, what="gradient")
        bottom = QSplitter(Qt.Orientation.Horizontal, split)

        box = QWidget(bottom)
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(QLabel("Input gradient", box))
        self.input_mode = QComboBox(box)
        self.input_mode.addItems(mz.INPUT_GRAD_MODES)
        self.input_mode.setToolTip("How the colour channels of the input gradient are combined")
        self.input_mode.currentTextChanged.connect(lambda _: self._draw_input())
        row.addWidget(self.input_mode, 1)
        lay.addLayout(row)
        self.input_pane = ImagePane("", box, colorbar=True)
        self.input_pane.hovered.connect(self._on_input_hover)
        lay.addWidget(self.input_pane, 1)

        self.table = QTableWidget(0, 2, bottom)
        self.table.setHorizontalHeaderLabels(["Layer", "Param grad ‖·‖₂"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        # In a narrow panel the names lose their start ("…block2"), not the part that tells
        # layers apart ("fea…" for all); the tooltip has the whole name.
        self.table.setTextElideMode(Qt.TextElideMode.ElideLeft)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("L2 norm of the gradient of each hooked layer's own parameters")
        self.table.cellClicked.connect(self._on_row)
        bottom.addWidget(box)
        bottom.addWidget(self.table)
        bottom.setSizes([420, 300])
        split.addWidget(self.view)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.body.addWidget(split, 1)

        self.input_map: np.ndarray | None = None
        self.input_levels = (0.0, 1.0)
        self.input_cmap = UNSIGNED_CMAP
        self.on_result(self.refresh)
        state.selectionChanged.connect(lambda *_: self._draw_layer())
        state.modelChanged.connect(self._clear)
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._draw_layer()
        self._draw_input()
        self._fill_table()

    def _clear(self) -> None:
        self.view.set_array(None, message="Loading…")
        self.input_pane.set_rgb(None)
        self.table.setRowCount(0)

    def _draw_layer(self) -> None:
        snap, st = self.state.snapshot, self.state
        call = (
            snap.call(st.selected_layer, st.selected_call) if snap and st.selected_layer else None
        )
        if call is None:
            self.view.set_array(None, message="Run the model (Ctrl+R) to see gradients.")
        elif call.gradient is None:
            self.view.set_array(
                None,
                message=f"No gradient reached '{call.layer}': it does not lead to the target "
                "score (or the run had no backward pass).",
            )
        else:
            multi = len(snap.layers[call.layer]) > 1
            title = f"∂score/∂{call.layer}" + (f" (call {call.call})" if multi else "")
            self.view.set_array(call.gradient, title)

    def _draw_input(self) -> None:
        snap = self.state.snapshot
        if snap is None or snap.input_grad is None:
            self.input_map = None
            self.input_pane.set_rgb(None)
            self.input_pane.set_title("no input gradient")
            self.input_pane.bar.setVisible(False)
            return
        self.input_pane.bar.setVisible(True)
        mode = self.input_mode.currentText()
        self.input_map = mz.input_gradient_map(snap.input_grad, mode)
        signed = mode != mz.INPUT_GRAD_MODES[0]
        self.input_cmap = figures.DIVERGING if signed else UNSIGNED_CMAP
        self.input_levels = (
            mz.signed_levels(self.input_map)
            if signed
            else (0.0, mz.value_levels(self.input_map)[1])
        )
        self.input_pane.set_values(self.input_map, self.input_cmap, self.input_levels)
        target = snap.target_name or snap.target
        self.input_pane.set_title(f"∂score[{target}]/∂input — {mode}")

    def _fill_table(self) -> None:
        snap = self.state.snapshot
        layers = list(snap.layers) if snap is not None else []
        self.table.setRowCount(len(layers))
        for r, name in enumerate(layers):
            norm = snap.param_grad_norms.get(name)
            item = QTableWidgetItem(name)
            item.setToolTip(name)
            value = QTableWidgetItem(
                "– (no parameters or frozen)" if norm is None else f"{norm:.4g}"
            )
            value.setTextAlignment(RIGHT)
            self.table.setItem(r, 0, item)
            self.table.setItem(r, 1, value)

    def _on_row(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.state.select(item.text(), 0)

    def _on_input_hover(self, y: float, x: float) -> None:
        if self.input_map is None or np.isnan(y):
            return
        v = self.input_map[int(y), int(x)]
        self.view.hover_label.setText(f"input gradient  ·  (y {int(y)}, x {int(x)})  ·  {v:.4g}")

    # -- figures and export -------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        panels = list(self.view.panels())
        if self.input_map is not None:
            rgb = figures.colorize(self.input_map, self.input_cmap, self.input_levels)
            bar = figures.ColorBar(self.input_cmap, *self.input_levels)
            title = f"input gradient ({self.input_mode.currentText()})"
            panels.append(figures.Panel(title, rgb, bar))
        return panels

    def make_arrays(self) -> dict[str, np.ndarray]:
        """Raw data behind the figure (for File ▸ Export all)."""
        out = self.view.arrays("gradients")
        snap = self.state.snapshot
        if snap is not None and snap.input_grad is not None:
            out["gradients/input_grad"] = snap.input_grad
            out["gradients/input_map"] = self.input_map
        if snap is not None:
            names = list(snap.layers)
            norms = [snap.param_grad_norms.get(n) for n in names]
            out["gradients/param_grad_norms"] = np.array(
                [np.nan if v is None else v for v in norms], np.float64
            )
        return out

    def settings(self) -> dict:
        """Choices behind the figure (for File ▸ Export all)."""
        snap = self.state.snapshot
        return {
            "layer": self.state.selected_layer,
            "call": self.state.selected_call,
            "input_gradient": self.input_mode.currentText(),
            "param_grad_layers": list(snap.layers) if snap is not None else [],
            **self.view.settings(),
        }
