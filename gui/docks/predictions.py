"""Predictions dock: the top-k classes; click one (or type a name / index) to explain it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
)

from gui.docks.base import BaseDock

PROB_ROLE = Qt.ItemDataRole.UserRole + 1


class ProbabilityBar(QStyledItemDelegate):
    """Draws a probability as a bar with its percentage."""

    def paint(self, painter: QPainter, option, index) -> None:
        prob = index.data(PROB_ROLE)
        if prob is None:
            return super().paint(painter, option, index)
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        r = option.rect.adjusted(3, 4, -3, -4)
        painter.fillRect(r, QColor(225, 228, 232))
        bar = QRectF(r.x(), r.y(), r.width() * float(np.clip(prob, 0, 1)), r.height())
        painter.fillRect(bar, QColor(66, 133, 244))
        painter.setPen(QColor(20, 20, 20))  # on the bar's own light background
        painter.drawText(r.adjusted(4, 0, -4, 0), Qt.AlignmentFlag.AlignVCenter, f"{prob:.2%}")
        painter.restore()


class PredictionsDock(BaseDock):
    """Top-k table; the highlighted row is the class being explained."""

    TITLE = "Predictions"
    OBJECT_NAME = "PredictionsDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.target_edit = QLineEdit(self)
        self.target_edit.setPlaceholderText("Target: class name or index")
        self.target_edit.setToolTip("Explain this class; empty = the top-1 class")
        self.target_edit.returnPressed.connect(self._on_target_text)
        self.add_header_widget(self.target_edit)
        self.header.setStretch(0, 1)
        top1 = QToolButton(self)
        top1.setText("Top-1")
        top1.setToolTip("Explain the predicted class")
        top1.clicked.connect(lambda: self.state.set_target(None))
        self.add_header_widget(top1)

        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Class", "Index", "Probability"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setItemDelegateForColumn(2, ProbabilityBar(self.table))
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        head.resizeSection(2, 130)
        self.table.cellClicked.connect(self._on_clicked)
        self.body.addWidget(self.table, 1)

        self.target_label = QLabel(self)
        self.target_label.setWordWrap(True)
        self.body.addWidget(self.target_label)

        state.resultChanged.connect(self._on_result)
        state.targetChanged.connect(self._on_target)
        state.modelChanged.connect(self._clear)
        self._clear()

    def _clear(self) -> None:
        self.table.setRowCount(0)
        self.target_label.setText("Run to see predictions.")

    def _on_result(self, snap) -> None:
        self.table.setRowCount(len(snap.topk))
        for row, (index, name, prob) in enumerate(snap.topk):
            cls = QTableWidgetItem(name or f"class {index}")
            cls.setData(Qt.ItemDataRole.UserRole, index)
            idx = QTableWidgetItem(str(index))
            idx.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            bar = QTableWidgetItem()
            bar.setData(PROB_ROLE, float(prob))
            for col, item in enumerate((cls, idx, bar)):
                self.table.setItem(row, col, item)
        self._highlight(snap.target)
        explained = snap.target_name or (f"class {snap.target}" if snap.target is not None else "")
        prob = float(snap.probs[snap.target]) if snap.target is not None else None
        text = f"Explaining <b>{explained}</b>"
        if prob is not None:
            text += f" (p = {prob:.2%})"
        text += " — the top-1 class" if self.state.target is None else " — chosen by you"
        self.target_label.setText(text)

    def _highlight(self, target) -> None:
        self.table.blockSignals(True)
        self.table.clearSelection()
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == target:
                self.table.selectRow(row)
        self.table.blockSignals(False)

    def _on_clicked(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.state.set_target(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_target(self, target) -> None:
        if target is None:
            self.target_edit.clear()
        self._highlight(target)

    def _on_target_text(self) -> None:
        if not self.state.set_target_text(self.target_edit.text()):
            self.target_edit.selectAll()

    def rows(self) -> list[tuple[int, str, float]]:
        """Table contents as (index, name, prob) (used by tests and export)."""
        out = []
        for row in range(self.table.rowCount()):
            out.append(
                (
                    int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)),
                    self.table.item(row, 0).text(),
                    float(self.table.item(row, 2).data(PROB_ROLE)),
                )
            )
        return out

    def make_panels(self):
        snap = self.state.snapshot
        if snap is None:
            return super().make_panels()
        return [(self.TITLE, _bar_chart(snap.topk, snap.target))]


def _bar_chart(topk, target, width: int = 420, row_h: int = 26) -> np.ndarray:
    """A plain horizontal bar chart of the top-k (uint8 RGB) for saved figures."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, row_h * len(topk) + 8), "white")
    draw = ImageDraw.Draw(img)
    label_w = 170
    for i, (index, name, prob) in enumerate(topk):
        y = 4 + i * row_h
        colour = (219, 68, 55) if index == target else (66, 133, 244)
        draw.text((4, y + 6), f"{(name or str(index))[:24]}", fill=(20, 20, 20))
        draw.rectangle(
            (label_w, y + 4, label_w + (width - label_w - 60) * prob, y + row_h - 4), fill=colour
        )
        draw.text((width - 54, y + 6), f"{prob:.1%}", fill=(20, 20, 20))
    return np.asarray(img)
