"""Layer stats dock: one row per hooked layer call with activation and gradient statistics."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from hookscope.gui.docks.base import BaseDock
from hookscope.gui.tree_model import format_shape

COLUMNS = (
    "Layer",
    "Call",
    "Shape",
    "Act mean",
    "Act std",
    "Act min",
    "Act max",
    "Zeros",
    "Grad mean",
    "Grad std",
    "Param grad ‖·‖",
)


RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def _num(v) -> str:
    return "–" if v is None else f"{v:.4g}"


class LayerStatsDock(BaseDock):
    """Numbers for every hooked call; click a row to select that layer and call."""

    TITLE = "Layer stats"
    OBJECT_NAME = "LayerStatsDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellClicked.connect(self._on_clicked)
        self.body.addWidget(self.table, 1)
        self.on_result(lambda: self._on_result(self.state.snapshot))
        state.modelChanged.connect(lambda: self.table.setRowCount(0))

    def _on_result(self, snap) -> None:
        rows = [c for calls in snap.layers.values() for c in calls]
        self.table.setRowCount(len(rows))
        for r, c in enumerate(rows):
            act = c.stats.get("activation") or {}
            grad = c.stats.get("gradient") or {}
            values = (
                c.layer,
                str(c.call),
                format_shape(c.shapes.get(c.part)),
                _num(act.get("mean")),
                _num(act.get("std")),
                _num(act.get("min")),
                _num(act.get("max")),
                f"{act['zeros']:.0%}" if "zeros" in act else "–",
                _num(grad.get("mean")),
                _num(grad.get("std")),
                _num(snap.param_grad_norms.get(c.layer)),
            )
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col >= 1:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                item.setData(Qt.ItemDataRole.UserRole, (c.layer, c.call))
                self.table.setItem(r, col, item)

    def _on_clicked(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            layer, call = item.data(Qt.ItemDataRole.UserRole)
            self.state.select(layer, call)
