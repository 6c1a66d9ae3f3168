"""Predictions dock: what the model predicted (classes, mask classes, boxes, an embedding);
click a row (or type a target) to explain it."""

from __future__ import annotations

from html import escape

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
)

from hookscope.core.engine.outputs import CLASSES, DENSE, DETECTIONS, EMBEDDING
from hookscope.gui import filedialogs
from hookscope.gui.docks.base import BaseDock
from hookscope.gui.widgets.overlay import class_colour, is_background

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


PLACEHOLDERS = {
    CLASSES: "Target: class name or index",
    DENSE: "Target: class, C@mask.png, or click the mask",
    DETECTIONS: "Target: box:i, or click a box",
    EMBEDDING: "Target: similar:IMAGE (Reference image…)",
}
HEADERS = {
    CLASSES: ["Class", "Index", "Probability"],
    DENSE: ["Class", "Index", "Pixel share"],
    DETECTIONS: ["Detection", "Box (x0, y0, x1, y1)", "Score"],
}


class PredictionsDock(BaseDock):
    """What the model predicted, as fits its output kind; the highlighted row is explained.

    Class scores: the top-k probabilities. Dense: the classes by pixel share, with their mask
    colour. Detections: every box with its label and score (a row is ``box:i``). Embedding: no
    softmax, the embedding's size and norm, and a reference image to compare with.
    """

    TITLE = "Predictions"
    OBJECT_NAME = "PredictionsDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.target_edit = QLineEdit(self)
        self.target_edit.setPlaceholderText(PLACEHOLDERS[CLASSES])
        self.target_edit.setToolTip(
            "What to explain: a class name or index, C@mask.png (segmentation), box:i "
            "(detection), similar:IMAGE (embedding); empty = the default"
        )
        self.target_edit.returnPressed.connect(self._on_target_text)
        self.add_header_widget(self.target_edit)
        self.header.setStretch(0, 1)
        self.reference_button = QPushButton("Reference image…", self)
        self.reference_button.setToolTip(
            "Explain the cosine similarity between this image's embedding and a reference's"
        )
        self.reference_button.clicked.connect(self.choose_reference)
        self.reference_button.setVisible(False)
        top1 = QToolButton(self)
        top1.setText("Default")
        top1.setToolTip(
            "Explain the default: the top-1 class, the most-predicted class, detection 0, or "
            "the embedding's norm"
        )
        top1.clicked.connect(lambda: self.state.set_target(None))
        self.add_header_widget(top1)

        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(HEADERS[CLASSES])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setItemDelegateForColumn(2, ProbabilityBar(self.table))
        head = self.table.horizontalHeader()
        # Names whole, the bar takes the rest: a fixed 130-px bar left "airpla…" in the
        # 236-px column of a 1000-px window.
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.cellClicked.connect(self._on_clicked)
        self.body.addWidget(self.table, 1)
        # In the body, not the header: the target box keeps its width next to it.
        self.body.addWidget(self.reference_button)

        self.target_label = QLabel(self)
        self.target_label.setWordWrap(True)
        self.body.addWidget(self.target_label)
        self.note_label = QLabel(self)
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet(
            "QLabel { background: #fff4ce; color: #3b2f00; padding: 3px; border-radius: 3px; }"
        )
        self.note_label.setVisible(False)
        self.body.addWidget(self.note_label)

        state.resultChanged.connect(self._on_result)
        state.targetChanged.connect(self._on_target)
        state.modelChanged.connect(self._clear)
        state.runFailed.connect(self._on_failed)
        self._clear()

    def kind(self) -> str:
        """The model's output kind (``classes`` before anything is known)."""
        kind = self.state.output_kind()
        return kind.kind if kind is not None else CLASSES

    def _clear(self) -> None:
        self.table.setRowCount(0)
        kind = self.kind()
        self._set_kind(kind)
        self.target_label.setText("Run to see predictions.")
        note = self.state.output_kind().note if self.state.output_kind() is not None else None
        self.note_label.setText(note or "")
        self.note_label.setVisible(bool(note))

    def _set_kind(self, kind: str) -> None:
        # Only a new kind touches the header: relabelling it relayouts the table every run.
        if kind == getattr(self, "_kind", None):
            return
        self._kind = kind
        self.target_edit.setPlaceholderText(PLACEHOLDERS[kind])
        self.reference_button.setVisible(kind == EMBEDDING)
        self.table.setVisible(kind != EMBEDDING)
        self.table.setHorizontalHeaderLabels(HEADERS.get(kind, HEADERS[CLASSES]))

    def _on_result(self, snap) -> None:
        kind = snap.kind.kind if snap.kind is not None else CLASSES
        self._set_kind(kind)
        rows = _rows(snap, kind)
        if self.table.rowCount() != len(rows):
            self.table.setRowCount(len(rows))
        for row, (target, text, second, score, colour) in enumerate(rows):
            # The rows' items are reused and only changed values set: new items (or equal
            # values set again) make the table lay out and repaint every row again.
            cls, idx, bar = (self._item(row, col) for col in range(3))
            _set(cls, Qt.ItemDataRole.DisplayRole, text)
            _set(cls, Qt.ItemDataRole.UserRole, target)
            _set(cls, Qt.ItemDataRole.DecorationRole, QColor(*colour) if colour else None)
            _set(idx, Qt.ItemDataRole.DisplayRole, second)
            _set(bar, PROB_ROLE, float(score))
        self._highlight(_row_target(snap, kind))
        _set_text(self.target_label, self._explained(snap, kind))
        notes = [snap.kind.note] if snap.kind is not None and snap.kind.note else []
        _set_text(self.note_label, "\n".join(notes))
        self.note_label.setVisible(bool(notes))

    def _item(self, row: int, col: int) -> QTableWidgetItem:
        item = self.table.item(row, col)
        if item is None:
            item = QTableWidgetItem()
            if col == 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, col, item)
        return item

    def _explained(self, snap, kind: str) -> str:
        """The sentence under the table: what is explained, and the numbers that fit."""
        chosen = " — the default" if self.state.target is None else " — chosen by you"
        label = escape(snap.target_label or "")
        if kind == EMBEDDING:
            emb = snap.embedding
            head = ""
            if emb is not None:
                head = (
                    f"Embedding: {emb.shape[0]} values, norm {float(np.linalg.norm(emb)):.4g} "
                    "(an embedding has no classes: nothing is softmaxed).<br>"
                )
            if (snap.target_text or "").startswith("similar:"):
                sim = f" = {snap.target_score:.4f}" if snap.target_score is not None else ""
                return f"{head}Explaining <b>{label}</b>{sim} (cosine){chosen}"
            return f"{head}Explaining <b>{label}</b>; choose a <b>Reference image…</b>."
        if kind == DETECTIONS:
            if not snap.predictions:
                return "<b>No detections</b> above the model's score threshold."
            score = f" (score {snap.target_score:.3f})" if snap.target_score is not None else ""
            return (
                f"{len(snap.predictions)} detection(s). Explaining <b>{label}</b>{score}{chosen}; "
                "click a row or a box in the Image panel."
            )
        if kind == DENSE:
            return (
                f"Explaining <b>{label}</b>{chosen}. The colours are the mask's over the model "
                "input (Image panel): click a region there to explain that class there."
            )
        explained = snap.target_name or (f"class {snap.target}" if snap.target is not None else "")
        text = f"Explaining <b>{escape(str(explained))}</b>"
        if snap.target is not None and snap.target < len(snap.probs):
            text += f" (p = {float(snap.probs[snap.target]):.2%})"
        return text + (" — the top-1 class" if self.state.target is None else " — chosen by you")

    def _on_failed(self, message: str) -> None:
        """A detection model that found nothing fails its run: say so here too."""
        if self.kind() == DETECTIONS and "detected nothing" in message:
            self.table.setRowCount(0)
            self.target_label.setText(f"<b>No detections.</b> {escape(message)}")

    def _highlight(self, target) -> None:
        rows = [
            row
            for row in range(self.table.rowCount())
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == target
        ]
        selected = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        if selected == rows:  # already shown: reselecting repaints the table
            return
        self.table.blockSignals(True)
        self.table.clearSelection()
        for row in rows:
            self.table.selectRow(row)
        self.table.blockSignals(False)

    def _on_clicked(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is None:
            return
        target = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(target, str):
            self.state.set_target_text(target)
        else:
            self.state.set_target(int(target))

    def _on_target(self, target) -> None:
        if target is None:
            self.target_edit.clear()
        elif isinstance(target, str):
            self.target_edit.setText(target)
        self._highlight(target)

    def _on_target_text(self) -> None:
        if not self.state.set_target_text(self.target_edit.text()):
            self.target_edit.selectAll()

    def choose_reference(self) -> bool:
        """Ask for a reference image and explain the similarity to it (``similar:PATH``)."""
        path = filedialogs.open_file(self, "Reference image", filedialogs.IMAGE_FILTER)
        return bool(path) and self.state.set_target_text(f"similar:{path}")

    def rows(self) -> list[tuple[int | str, str, float]]:
        """Table contents as (target, text, score) (used by tests and export).

        The target is a class index, or ``box:i`` for a detection.
        """
        out = []
        for row in range(self.table.rowCount()):
            out.append(
                (
                    self.table.item(row, 0).data(Qt.ItemDataRole.UserRole),
                    self.table.item(row, 0).text(),
                    float(self.table.item(row, 2).data(PROB_ROLE)),
                )
            )
        return out

    def make_panels(self):
        snap = self.state.snapshot
        if snap is None or not snap.predictions:
            return super().make_panels()
        kind = snap.kind.kind if snap.kind is not None else CLASSES
        bars = [(i, text, score) for i, text, _, score, _ in _rows(snap, kind)]
        return [(self.TITLE, _bar_chart(bars, _row_target(snap, kind)))]


def _set(item: QTableWidgetItem, role, value) -> None:
    if item.data(role) != value:
        item.setData(role, value)


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:  # a wrapped label relayouts its dock on every setText
        label.setText(text)


def _rows(snap, kind: str) -> list[tuple[int | str, str, str, float, tuple | None]]:
    """(target, text, second column, score in [0, 1], colour or None) per row."""
    if kind == DETECTIONS:
        return [
            (
                p.target_text(kind),
                f"{p.index}: {p.name or (f'class {p.label}' if p.label is not None else '')}",
                ", ".join(f"{v:.0f}" for v in p.box) if p.box else "",
                p.score,
                None,
            )
            for p in snap.predictions
        ]
    if kind == EMBEDDING:
        return []
    colour = kind == DENSE
    return [
        (
            p.index,
            p.name or f"class {p.index}",
            str(p.index),
            p.score,
            class_colour(p.index) if colour and not is_background(p.name) else None,
        )
        for p in snap.predictions
    ]


def _row_target(snap, kind: str):
    """The row value that is explained: ``box:i`` for detections, else the class index."""
    return snap.target_text if kind == DETECTIONS else snap.target


def _bar_chart(topk, target, width: int = 420, row_h: int = 26) -> np.ndarray:
    """A plain horizontal bar chart of ``(target, name, score)`` rows (uint8 RGB) for figures."""
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
