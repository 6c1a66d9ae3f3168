"""Channel importance dock: zero each channel of a layer in turn and plot the drop of the target.

The sweep runs in the worker (progress, cancel). Bars are sorted, largest drop first; clicking
a bar (or a row of the top list) adds an "ablate that channel" activation edit.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
)

from hookscope.core.jobs.experiments import importance_job
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.job_control import DockJob
from hookscope.gui.widgets.panes import BACKGROUND, TEXT

POSITIVE = (66, 133, 244)
NEGATIVE = (219, 68, 55)


def map_layers(state) -> list[str]:
    """Ticked layers whose output has channels (N, C, ...) — the ones a sweep can ablate."""
    tree = state.tree
    out = []
    for name in state.layers:
        node = tree.find(name) if tree is not None else None
        shape = node.out_shape if node is not None else None
        if shape is None or len(shape) >= 3:
            out.append(name)
    return out


def ablate_edits(edits: list[dict], layer: str, channels: list[int]) -> list[dict]:
    """``edits`` with ``channels`` of ``layer`` zeroed: merged into an existing zero edit."""
    out = [dict(d) for d in edits]
    for d in out:
        if (
            d.get("kind") == "act"
            and d.get("layer") == layer
            and d.get("op") == "zero"
            and d.get("on", "output") == "output"
            and d.get("channels") is not None
        ):
            d["channels"] = list(dict.fromkeys([*d["channels"], *map(int, channels)]))
            return out
    out.append(
        {"kind": "act", "layer": layer, "op": "zero", "on": "output", "channels": list(channels)}
    )
    return out


class ImportanceDock(BaseDock):
    """Layer combo, Run, sorted bar chart of probability drops, top-N list."""

    TITLE = "Channel importance"
    OBJECT_NAME = "ImportanceDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.layer_combo = QComboBox(self)
        self.layer_combo.setMinimumContentsLength(14)
        self.layer_combo.setToolTip("Layer whose channels are zeroed one at a time")
        self.add_header_widget(QLabel("Layer", self))
        self.add_header_widget(self.layer_combo)
        self.run_button = QPushButton("Run", self)
        self.run_button.setToolTip("Zero each channel in turn and record the target probability")
        self.run_button.clicked.connect(self.run)
        self.add_header_widget(self.run_button)
        self.cancel_button = QPushButton("Cancel", self)
        self.add_header_widget(self.cancel_button)

        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.plot = pg.PlotWidget(split, background=BACKGROUND)
        self.plot.setLabel("left", "drop in target probability", color=TEXT)
        # Short: the axis label is centred and cut at both ends in a 1000-px window's panel.
        self.plot.setLabel("bottom", "channels, largest drop first")
        self.plot.setToolTip("Channels, largest drop first: click a bar to ablate that channel")
        self.plot.showGrid(y=True, alpha=0.3)
        self.plot.setMenuEnabled(False)
        self.plot.scene().sigMouseClicked.connect(self._on_plot_click)
        self.bars: pg.BarGraphItem | None = None
        self.top_list = QListWidget(split)
        self.top_list.setToolTip("Double-click a channel to ablate it")
        self.top_list.itemDoubleClicked.connect(self._on_item)
        split.addWidget(self.plot)
        split.addWidget(self.top_list)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        self.body.addWidget(split, 1)

        row = QHBoxLayout()
        self.top_n = QSpinBox(self)
        self.top_n.setRange(1, 4096)
        self.top_n.setValue(5)
        self.top_n.setPrefix("top ")
        self.ablate_button = QPushButton("Ablate top channels", self)
        self.ablate_button.setToolTip("Add an edit that zeroes the top-N channels")
        self.ablate_button.clicked.connect(lambda: self.ablate_top(self.top_n.value()))
        self.ablate_button.setEnabled(False)
        self.status = QLabel("Pick a layer and press Run.", self)
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        row.addWidget(self.top_n)
        row.addWidget(self.ablate_button)
        self.body.addLayout(row)

        self.result = None  # core.experiments.importance.ChannelImportance
        self.heights = np.zeros(0)
        self.job = DockJob(state, "importance", self.run_button, self.cancel_button, self.status)
        state.layersChanged.connect(lambda _: self._fill_layers())
        state.modelChanged.connect(self._on_model)
        self._fill_layers()

    # -- controls -----------------------------------------------------------------------------
    def _fill_layers(self) -> None:
        current = self.layer_combo.currentText()
        names = map_layers(self.state)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        pick = current if current in names else None
        pick = pick or next((n for n in self.state.cam_layers if n in names), None)
        if pick:
            self.layer_combo.setCurrentText(pick)
        self.run_button.setEnabled(bool(names))

    def _on_model(self) -> None:
        self.result = None
        self._draw()
        self._fill_layers()

    def run(self, layer: str | None = None) -> int | None:
        """Start the sweep for ``layer`` (default: the combo's) in the worker."""
        st = self.state
        layer = layer or self.layer_combo.currentText()
        if not st.ready or not layer:
            return None
        if layer != self.layer_combo.currentText():
            self.layer_combo.setCurrentText(layer)
        return self.job.submit(
            importance_job,
            st.loaded,
            st.image,
            layer,
            st.target,
            spec=st.input_spec,
            status=f"Ablating the channels of {layer}… (Cancel stops)",
            on_result=self._on_result,
        )

    def _on_result(self, result) -> None:
        self.result = result
        self._draw()

    # -- drawing ------------------------------------------------------------------------------
    def _draw(self) -> None:
        if self.bars is not None:
            self.plot.removeItem(self.bars)
            self.bars = None
        self.top_list.clear()
        r = self.result
        self.ablate_button.setEnabled(r is not None)
        if r is None:
            self.heights = np.zeros(0)
            return
        self.heights = np.asarray(r.drops[r.ranking], dtype=np.float64)
        n = len(self.heights)
        brushes = [pg.mkBrush(*(POSITIVE if h >= 0 else NEGATIVE)) for h in self.heights]
        self.bars = pg.BarGraphItem(
            x=np.arange(n), height=self.heights, width=0.8, brushes=brushes, pen=None
        )
        self.plot.addItem(self.bars)
        self.plot.setXRange(-1, n, padding=0.01)
        self.plot.enableAutoRange(axis="y")
        for rank, (ch, drop, prob) in enumerate(r.top(min(n, 50))):
            # The bar's own quantity and sign (drop > 0: the bar stands up), not Δp = −drop.
            text = f"#{rank + 1}  channel {ch}:  p → {prob:.3f}  (drop {drop:+.3f})"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, ch)
            self.top_list.addItem(item)
        name = r.target_name or r.target
        self.status.setText(
            f"{r.layer}: {n} channels; target {name} p = {r.base_prob:.3f}. Largest drop "
            f"{self.heights[0]:.3f} (channel {int(r.ranking[0])})."
        )
        self.top_n.setMaximum(max(1, n))

    def channel_at_bar(self, rank: int) -> int | None:
        """The channel drawn as bar ``rank`` (0 = largest drop)."""
        if self.result is None or not 0 <= rank < len(self.result.ranking):
            return None
        return int(self.result.ranking[rank])

    def _on_plot_click(self, ev) -> None:
        if self.result is None:
            return
        vb = self.plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        x = vb.mapSceneToView(ev.scenePos()).x()
        ch = self.channel_at_bar(int(round(x)))
        if ch is not None:
            self.ablate([ch])

    def _on_item(self, item) -> None:
        self.ablate([int(item.data(Qt.ItemDataRole.UserRole))])

    def ablate(self, channels: list[int]) -> None:
        """Add (or extend) the "zero these channels" edit of the swept layer."""
        if self.result is None or not channels:
            return
        self.state.set_edits(ablate_edits(self.state.edits, self.result.layer, channels))
        which = ", ".join(map(str, channels[:5])) + (", …" if len(channels) > 5 else "")
        self.state.statusMessage.emit(
            f"Ablating {len(channels)} channel{'s' if len(channels) > 1 else ''} "
            f"({which}) of {self.result.layer}."
        )

    def ablate_top(self, n: int) -> None:
        if self.result is not None:
            self.ablate([int(c) for c in self.result.ranking[:n]])

    # -- figures ------------------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        return super().make_panels() if self.result is not None else []

    def make_arrays(self) -> dict[str, np.ndarray]:
        r = self.result
        if r is None:
            return {}
        return {"probs": r.probs, "drops": r.drops, "ranking": r.ranking}

    def settings(self) -> dict:
        r = self.result
        if r is None:
            return {}
        return {"layer": r.layer, "target": r.target, "base_prob": r.base_prob}
