"""Edits dock: gradient and activation edits applied to every run (the tutorials' experiments).

A gradient edit is a tensor hook on a layer's output that changes what flows back (×k, clip,
zero, noise); an activation edit is a forward (pre-)hook that changes channels. The list lives
in ``AppState.edits`` as plain dicts, so sessions, hook code and the probe share it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
)

from hookscope.core.experiments.interventions import describe_edit
from hookscope.gui.docks.base import BaseDock
from hookscope.gui.widgets.flow import FlowLayout
from hookscope.gui.widgets.scroll import make_scrollable

GRAD_CHOICES = (
    ("scale", "scale ×k"),
    ("clip", "clip ±c"),
    ("zero", "zero"),
    ("noise", "noise (σ × own std)"),
)
ACT_CHOICES = (
    ("zero", "zero channels"),
    ("scale", "scale channels ×k"),
    ("mean", "channels → spatial mean"),
    ("topk", "keep top-k channels"),
)


def parse_channels(text: str) -> list[int] | None:
    """``"0, 5, 7"`` or ``"3-6"`` → channel list; empty → None (all channels).

    Raises:
        ValueError: With a one-sentence message for the user.
    """
    text = text.strip()
    if not text or text.lower() == "all":
        return None
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep and lo.strip():
                out += list(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(
                f"Channels must be numbers like 0, 5, 7 or a range like 3-6, not '{part}'."
            ) from None
    return list(dict.fromkeys(out))


class EditsDock(BaseDock):
    """Add / remove gradient and activation edits; the list reruns the probe when it changes."""

    TITLE = "Edits"
    OBJECT_NAME = "EditsDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        # -- gradient edit ------------------------------------------------------------------
        # Short titles, rows that wrap: the Edits panel shares the narrow right column.
        grad_box = QGroupBox("Gradient edit", self)
        grad_box.setToolTip("A tensor hook on the layer's output changes what flows back")
        gf = QFormLayout(grad_box)
        gf.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.grad_layer = QComboBox(grad_box)
        self.grad_op = QComboBox(grad_box)
        for op, text in GRAD_CHOICES:
            self.grad_op.addItem(text, op)
        self.grad_value = QDoubleSpinBox(grad_box)
        self.grad_value.setRange(-1e6, 1e6)
        self.grad_value.setDecimals(4)
        self.grad_value.setValue(2.0)
        self.grad_add = QPushButton("Add gradient edit", grad_box)
        self.grad_add.clicked.connect(self.add_grad_edit)
        self.grad_op.currentIndexChanged.connect(self._sync_grad_value)
        gf.addRow("Layer", self.grad_layer)
        row = FlowLayout()
        row.addWidget(self.grad_op, 1)
        row.addWidget(self.grad_value)
        gf.addRow("Change", row)
        gf.addRow(self.grad_add)
        self.body.addWidget(grad_box)

        # -- activation edit ----------------------------------------------------------------
        act_box = QGroupBox("Activation edit", self)
        act_box.setToolTip("A forward hook changes the layer's output (or its input)")
        af = QFormLayout(act_box)
        af.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.act_layer = QComboBox(act_box)
        self.act_on = QComboBox(act_box)
        self.act_on.addItem("output", "output")
        self.act_on.addItem("input", "input")
        self.act_on.setToolTip("Edit what the layer outputs, or what it receives")
        lay_row = FlowLayout()
        lay_row.addWidget(self.act_layer, 1)
        lay_row.addWidget(self.act_on)
        self.act_op = QComboBox(act_box)
        for op, text in ACT_CHOICES:
            self.act_op.addItem(text, op)
        self.act_value = QDoubleSpinBox(act_box)
        self.act_value.setRange(-1e6, 1e6)
        self.act_value.setDecimals(3)
        self.act_value.setValue(0.0)
        self.act_k = QSpinBox(act_box)
        self.act_k.setRange(0, 100000)
        self.act_k.setValue(8)
        self.act_k.setPrefix("k = ")
        op_row = FlowLayout()
        op_row.addWidget(self.act_op, 1)
        op_row.addWidget(self.act_value)
        op_row.addWidget(self.act_k)
        self.act_channels = QLineEdit(act_box)
        self.act_channels.setPlaceholderText("e.g. 0, 5, 7 or 3-6 (empty = all)")
        self.act_add = QPushButton("Add activation edit", act_box)
        self.act_add.clicked.connect(self.add_act_edit)
        self.act_op.currentIndexChanged.connect(self._sync_act_value)
        for combo in (self.grad_op, self.act_op, self.grad_layer, self.act_layer):
            # ~10 characters wide at least, not the longest choice: the column is narrow.
            combo.setMinimumContentsLength(10)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
        af.addRow("Layer", lay_row)
        af.addRow("Change", op_row)
        af.addRow("Channels", self.act_channels)
        af.addRow(self.act_add)
        self.body.addWidget(act_box)

        # -- the list -----------------------------------------------------------------------
        caption = QLabel("Active edits (applied to every run, in this order)", self)
        caption.setWordWrap(True)
        self.body.addWidget(caption)
        self.list = QListWidget(self)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setToolTip("Delete removes the selected edits")
        self.body.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear all", self)
        self.clear_button.clicked.connect(lambda: self.state.set_edits([]))
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.clear_button)
        self.body.addLayout(buttons)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.body.addWidget(self.note)

        make_scrollable(self)  # tall form: scroll rather than push the window taller
        state.layersChanged.connect(lambda _: self._fill_layers())
        state.modelChanged.connect(self._fill_layers)
        state.editsChanged.connect(lambda _: self.refresh())
        state.resultChanged.connect(lambda _: self._show_note())
        self._sync_grad_value()
        self._sync_act_value()
        self._fill_layers()
        self.refresh()

    # -- controls -----------------------------------------------------------------------------
    def _fill_layers(self) -> None:
        for combo in (self.grad_layer, self.act_layer):
            current = combo.currentText()
            combo.clear()
            combo.addItems(list(self.state.layers))
            if current in self.state.layers:
                combo.setCurrentText(current)
            elif self.state.selected_layer in self.state.layers:
                combo.setCurrentText(self.state.selected_layer)
        enabled = bool(self.state.layers)
        self.grad_add.setEnabled(enabled)
        self.act_add.setEnabled(enabled)

    def _sync_grad_value(self) -> None:
        op = self.grad_op.currentData()
        self.grad_value.setEnabled(op != "zero")
        self.grad_value.setPrefix({"scale": "×", "clip": "±", "noise": "σ "}.get(op, ""))
        if op == "clip" and self.grad_value.value() < 0:
            self.grad_value.setValue(-self.grad_value.value())

    def _sync_act_value(self) -> None:
        op = self.act_op.currentData()
        self.act_value.setVisible(op == "scale")
        self.act_k.setVisible(op == "topk")
        self.act_channels.setEnabled(op != "topk")

    # -- actions ------------------------------------------------------------------------------
    def grad_edit(self) -> dict:
        """The gradient edit the controls describe."""
        op = self.grad_op.currentData()
        value = 0.0 if op == "zero" else float(self.grad_value.value())
        d = {"kind": "grad", "layer": self.grad_layer.currentText(), "op": op, "value": value}
        if op == "noise":
            d["seed"] = 0
        return d

    def act_edit(self) -> dict:
        """The activation edit the controls describe.

        Raises:
            ValueError: Channels that are not numbers.
        """
        op = self.act_op.currentData()
        d = {"kind": "act", "layer": self.act_layer.currentText(), "op": op}
        d["on"] = self.act_on.currentData()
        if op == "topk":
            d["k"] = int(self.act_k.value())
        else:
            d["channels"] = parse_channels(self.act_channels.text())
        if op == "scale":
            d["value"] = float(self.act_value.value())
        return d

    def add_grad_edit(self) -> None:
        if self.grad_layer.currentText():
            self.state.add_edit(self.grad_edit())

    def add_act_edit(self) -> None:
        if not self.act_layer.currentText():
            return
        try:
            d = self.act_edit()
        except ValueError as exc:
            self.state.errorRaised.emit(str(exc))
            return
        self.state.add_edit(d)

    def remove_selected(self) -> None:
        rows = sorted({self.list.row(it) for it in self.list.selectedItems()})
        if not rows and self.list.count():
            rows = [self.list.count() - 1]
        keep = [d for i, d in enumerate(self.state.edits) if i not in rows]
        self.state.set_edits(keep)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.remove_selected()
            return
        super().keyPressEvent(event)

    # -- view ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.list.clear()
        for d in self.state.edits:
            item = QListWidgetItem(describe_edit(d), self.list)
            item.setToolTip(str(d))
        self.remove_button.setEnabled(bool(self.state.edits))
        self.clear_button.setEnabled(bool(self.state.edits))
        self._show_note()

    def _show_note(self) -> None:
        n = len(self.state.edits)
        if not n:
            self.note.setText("No edits: runs show the model as it is.")
            return
        snap = self.state.snapshot
        top = ""
        if snap is not None and snap.topk:
            i, name, p = snap.topk[0]
            top = f" Edited run: top-1 {name or i} ({p:.1%})."
        self.note.setText(f"{n} edit{'s' if n > 1 else ''} active in every run.{top}")

    def settings(self) -> dict:
        return {"edits": [dict(d) for d in self.state.edits]} if self.state.edits else {}
