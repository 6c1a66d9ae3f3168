"""LayerPicker: a combo of the ticked layers and a call spin box, bound to AppState's selection."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSpinBox, QWidget


class LayerPicker(QWidget):
    """Pick the layer (and call, for modules run several times) the docks show.

    Changes go to ``state.select``; the picker follows ``selectionChanged`` and
    ``layersChanged`` / ``resultChanged``, so every dock shows the same selection.
    """

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(QLabel("Layer", self))
        self.combo = QComboBox(self)
        self.combo.setMinimumContentsLength(14)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.setToolTip("A ticked layer (tick more in the model tree)")
        lay.addWidget(self.combo, 1)
        self.call_label = QLabel("call", self)
        lay.addWidget(self.call_label)
        self.call_spin = QSpinBox(self)
        self.call_spin.setToolTip("Which call of a module that runs several times per forward")
        lay.addWidget(self.call_spin)
        self.combo.currentTextChanged.connect(self._on_pick)
        self.call_spin.valueChanged.connect(self._on_pick)
        state.layersChanged.connect(lambda _: self.refresh())
        state.resultChanged.connect(lambda _: self.refresh())
        state.selectionChanged.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Fill from the state without echoing back into it."""
        st = self.state
        with QSignalBlocker(self.combo), QSignalBlocker(self.call_spin):
            names = list(st.layers)
            if [self.combo.itemText(i) for i in range(self.combo.count())] != names:
                self.combo.clear()
                self.combo.addItems(names)
            if st.selected_layer in names:
                self.combo.setCurrentText(st.selected_layer)
            n = self.calls(self.combo.currentText())
            self.call_spin.setRange(0, max(0, n - 1))
            self.call_spin.setValue(min(st.selected_call, max(0, n - 1)))
            self.call_spin.setEnabled(n > 1)
            suffix = f" of {n}" if n > 1 else ""
            if self.call_spin.suffix() != suffix:  # setting it, even unchanged, relayouts
                self.call_spin.setSuffix(suffix)
            self.call_label.setEnabled(n > 1)

    def calls(self, layer: str) -> int:
        snap = self.state.snapshot
        return len(snap.layers.get(layer) or []) if snap is not None else 0

    def _on_pick(self, *_):
        layer = self.combo.currentText()
        if not layer:
            return
        call = self.call_spin.value()
        if layer != self.state.selected_layer:
            call = 0
        self.state.select(layer, call)
