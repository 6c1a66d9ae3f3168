"""CAM dock: class activation maps of the CAM layers, overlaid on the model input, side by side.

Method and layers live in AppState (``set_cam``), so changing them reruns through the worker
with progress and cancel; colour map and alpha only redraw (``set_display``).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEvent, QSignalBlocker, QSize, Qt
from PySide6.QtGui import QAction, QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.jobs import side_by_side
from hookscope.core.methods import explainers
from hookscope.gui import figures
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.concept_panel import ConceptPanel
from hookscope.gui.widgets.flow import FlowLayout
from hookscope.gui.widgets.method_picker import MethodPicker
from hookscope.gui.widgets.panes import ImagePane

METHODS = tuple(explainers.names(explainers.CAM))
"""The CAM methods of the explainer registry, in its order."""
TRANSFORMER_METHODS = tuple(explainers.names(explainers.TRANSFORMER))
"""The explainer registry's transformer methods (rollout, chefer, legrad, attnlrp...)."""
CAM_CHOICE = "off (the CAM above)"
"""The Transformer group's first entry: the CAM method of the header runs."""
SLOW_METHODS = tuple(k for k in METHODS if explainers.get(k).slow)
"""Methods that cost many passes (the registry's ``cost``): progress counts channels."""
PANE_MIN = 120
"""Smallest side of a CAM pane's image area (px): smaller, the dock scrolls."""
BAR_W = 76
"""Width of a pane's colour bar with its labels (px)."""
NARROW = 2 * (PANE_MIN + BAR_W) + 150
"""Below this panel width (px) the CAM layer list goes above the maps, not beside them."""
TITLE_H = 22
"""Height of a pane's title row (px)."""


class CamPane(ImagePane):
    """A map pane that asks only for its minimum: the panel's own height decides the rest
    (ImagePane's 260 px hint made two stacked maps taller than the panel, so it scrolled)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view.sigTransformChanged.connect(self._align_bar)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(PANE_MIN + BAR_W, PANE_MIN + TITLE_H)

    def _align_bar(self) -> None:
        """The colour strip as tall as the map beside it and level with it (it ran the pane's
        whole height, past the top and bottom of a square map)."""
        if self.bar is None or self.image.image is None:
            return
        shown = self.image.mapRectToScene(self.image.boundingRect())
        height = min(shown.height(), self.view.sceneBoundingRect().height())
        labels = QFontMetrics(self.bar.font()).height()  # half a label above and below
        self.bar.setMaximumHeight(max(height + labels, 2 * labels))
        self.ci.layout.setAlignment(self.bar, Qt.AlignmentFlag.AlignVCenter)


def grid_columns(n: int, width: int, height: int) -> int:
    """Columns for ``n`` square maps in a ``width`` × ``height`` area: the largest maps.

    A fixed √n grid put two maps side by side in a narrow, tall panel (the first cropped,
    the second tiny); the shape of the area decides instead. Every pane has its bar.
    """
    if n <= 1:
        return 1

    def side(cols: int) -> float:
        rows = math.ceil(n / cols)
        return min(width / cols - BAR_W, height / rows - TITLE_H)

    return max(range(1, n + 1), key=lambda cols: (round(side(cols)), -cols))


class CamDock(BaseDock):
    """Grad-CAM and friends for the ticked feature-map layers."""

    TITLE = "CAM"
    OBJECT_NAME = "CamDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.method_combo = QComboBox(self)
        self.method_combo.addItems(list(METHODS))
        self._method_tip = (
            f"CAM method ({' / '.join(SLOW_METHODS)} run one forward per channel: slow)"
        )
        self.method_combo.setToolTip(self._method_tip)
        self.method_combo.currentTextChanged.connect(self._on_method)
        self.add_header_widget(QLabel("Method", self))
        self.add_header_widget(self.method_combo)
        # Says which method runs when the combo's does not (a transformer method, side by side).
        self.method_note = QLabel("", self)
        self.method_note.setStyleSheet("QLabel { color: #806000; }")
        self.method_note.setVisible(False)
        self.add_header_widget(self.method_note)
        self.compare_button = MethodPicker(self)
        self.compare_button.changed.connect(self.state.set_compare)
        self.add_header_widget(self.compare_button)

        # Two groups in a row that wraps: in a narrow panel the display controls go under the
        # target instead of widening the panel (the row scrolled sideways).
        controls = FlowLayout(spacing=6)
        target_group, display_group = QHBoxLayout(), QHBoxLayout()
        target_group.addWidget(QLabel("Target", self))
        self.target_edit = QLineEdit(self)
        self.target_edit.setPlaceholderText("top-1 class")
        self.target_edit.setToolTip("Class to explain: a name or index; empty = the top-1 class")
        self.target_edit.returnPressed.connect(self._on_target_text)
        target_group.addWidget(self.target_edit, 1)
        top1 = QToolButton(self)
        top1.setText("Top-1")
        top1.setToolTip("Explain the predicted class")
        top1.clicked.connect(lambda: self.state.set_target(None))
        target_group.addWidget(top1)
        display_group.addWidget(QLabel("Colours", self))
        self.cmap_combo = QComboBox(self)
        self.cmap_combo.addItems(figures.colormap_names())
        self.cmap_combo.currentTextChanged.connect(lambda n: self.state.set_display(colormap=n))
        display_group.addWidget(self.cmap_combo)
        display_group.addWidget(QLabel("Alpha", self))
        self.alpha_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setMaximumWidth(120)
        self.alpha_slider.setToolTip("Opacity of the map over the image")
        self.alpha_slider.valueChanged.connect(lambda v: self.state.set_display(alpha=v / 100))
        display_group.addWidget(self.alpha_slider)
        controls.addLayout(target_group, 1)
        controls.addLayout(display_group)
        self.body.addLayout(controls)
        self._build_transformer_group()

        split = self.split = QSplitter(Qt.Orientation.Horizontal, self)
        split.installEventFilter(self)
        left = self.layer_box = QWidget(split)
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addWidget(QLabel("CAM layers", left))
        self.layer_list = QListWidget(left)
        self.layer_list.setMaximumWidth(220)
        # Long names (a ViT's encoder.layers.encoder_layer_3.ln_1) keep their telling end,
        # "…layer_3.ln_1", instead of a sideways scroll bar; the tooltip has them whole.
        self.layer_list.setTextElideMode(Qt.TextElideMode.ElideLeft)
        self.layer_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.layer_list.setToolTip("Ticked layers with a feature-map output; tick to compute a map")
        self.layer_list.itemChanged.connect(self._on_layer_item)
        left_lay.addWidget(self.layer_list, 1)
        self.grid_host = QWidget(split)
        self.grid_host.installEventFilter(self)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(4)
        self.note = QLabel("", self.grid_host)
        self.note.setWordWrap(True)
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid.addWidget(self.note, 0, 0)
        split.addWidget(left)
        split.addWidget(self.grid_host)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([150, 600])
        self.body.addWidget(split, 1)
        # Concepts of the layer and the map restricted to a clicked channel / concept
        self.concepts = ConceptPanel(state, self)
        self.body.addWidget(self.concepts)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.body.addWidget(self.status)
        # Why a map is flat or missing (every channel weight negative for this class, a zero
        # gradient...): in plain view, not only in the status bar.
        self.notes_label = QLabel("", self)
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet(
            "QLabel { background: #fff4d6; border: 1px solid #e0b040; padding: 3px; }"
        )
        self.notes_label.setVisible(False)
        self.body.addWidget(self.notes_label)

        self.panes: dict[str, ImagePane] = {}
        self.maps: dict[str, np.ndarray] = {}
        self.overlays: dict[str, np.ndarray] = {}
        self._titles: dict[str, str] = {}  # pane → its figure title (side by side)
        self.figure: list[figures.Panel] = []  # what Save / Copy write: the overlays shown
        self.on_result(self.refresh)
        state.camChanged.connect(self._sync_controls)
        state.layersChanged.connect(lambda _: self._fill_layers())
        state.modelChanged.connect(self._fill_layers)
        state.modelChanged.connect(self._fill_blocks)
        state.modelChanged.connect(self._fill_compare)
        state.targetChanged.connect(lambda _: self._show_target())
        state.displayChanged.connect(self._on_display)
        state.busyChanged.connect(lambda busy: busy or self._show_status())
        state.busyChanged.connect(lambda _busy: self._retitle())
        state.progress.connect(self._on_progress)
        self._sync_controls()
        self._fill_layers()
        self._fill_blocks()
        self._fill_compare()
        self.refresh()

    def _build_transformer_group(self) -> None:
        """Method, blocks and head fusion of the transformer methods, from the registry.

        Shown only for a model with a token layout whose attention can be read.
        """
        group = self.tf_group = QGroupBox("Transformer", self)
        lay = QHBoxLayout(group)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.addWidget(QLabel("Method", group))
        self.tf_combo = QComboBox(group)
        self.tf_combo.addItem(CAM_CHOICE)
        for name in TRANSFORMER_METHODS:
            self.tf_combo.addItem(name)
            idx = self.tf_combo.count() - 1
            self.tf_combo.setItemData(idx, explainers.get(name).title, Qt.ItemDataRole.ToolTipRole)
        self.tf_combo.setToolTip("A method made for transformers: it reads the attention")
        self.tf_combo.currentTextChanged.connect(self._on_tf_method)
        lay.addWidget(self.tf_combo)
        self.blocks_button = QToolButton(group)
        self.blocks_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.blocks_button.setToolTip("Blocks the method reads (none ticked: the method's default)")
        self.blocks_button.setMenu(QMenu(self.blocks_button))
        # Room for the longest text and the menu arrow (it was cut to "Blocks: default_").
        wide = self.blocks_button.fontMetrics().horizontalAdvance("Blocks: default")
        self.blocks_button.setMinimumWidth(wide + 30)
        lay.addWidget(self.blocks_button)
        lay.addWidget(QLabel("Heads", group))
        self.fusion_combo = QComboBox(group)
        self.fusion_combo.setToolTip("How the attention heads are fused (rollout)")
        self.fusion_combo.currentTextChanged.connect(self._on_fusion)
        lay.addWidget(self.fusion_combo)
        lay.addStretch(1)
        self.body.addWidget(group)
        group.setVisible(False)

    def _fusion_param(self, method: str | None):
        """The ``fusion`` option of ``method`` (a registry Param), or None."""
        if method not in TRANSFORMER_METHODS:
            return None
        return next((p for p in explainers.get(method).params if p.name == "fusion"), None)

    # -- controls -> state --------------------------------------------------------------------
    def _on_method(self, method: str) -> None:
        if method:
            self.state.set_cam(method=method)

    def _on_tf_method(self, method: str) -> None:
        if method == CAM_CHOICE:
            method = self.method_combo.currentText()
        if method:
            self.state.set_cam(method=method)

    def _on_fusion(self, fusion: str) -> None:
        if fusion:
            self.state.set_cam(params={**self.state.cam_params, "fusion": fusion})

    def _on_blocks(self) -> None:
        self.state.set_cam(blocks=self.checked_blocks())

    def checked_blocks(self) -> list[str]:
        """The blocks ticked in the Blocks menu, in model order."""
        return [a.text() for a in self.blocks_button.menu().actions() if a.isChecked()]

    def _fill_blocks(self) -> None:
        """The group for this model: shown when it has blocks a transformer method reads."""
        blocks = self.state.transformer_blocks()
        menu = self.blocks_button.menu()
        menu.clear()
        for name in blocks:
            action = QAction(name, menu)
            action.setCheckable(True)
            action.toggled.connect(lambda _on: self._on_blocks())
            menu.addAction(action)
        self.tf_group.setVisible(bool(blocks))
        self._sync_transformer()

    def _sync_transformer(self) -> None:
        st = self.state
        method = st.cam_method if st.cam_method in TRANSFORMER_METHODS else CAM_CHOICE
        with QSignalBlocker(self.tf_combo):
            self.tf_combo.setCurrentText(method)
        wanted = set(st.cam_blocks)
        ticked = 0
        for action in self.blocks_button.menu().actions():
            with QSignalBlocker(action):
                action.setChecked(action.text() in wanted)
            ticked += action.isChecked()
        self.blocks_button.setText(f"Blocks: {ticked}" if ticked else "Blocks: default")
        # Side by side: the blocks and head fusion of the compared transformer methods count.
        compared = [m for m in st.cam_compare if m in TRANSFORMER_METHODS]
        shown = next((m for m in compared if self._fusion_param(m)), None)
        param = self._fusion_param(shown if st.cam_compare else st.cam_method)
        with QSignalBlocker(self.fusion_combo):
            self.fusion_combo.clear()
            if param is not None:
                self.fusion_combo.addItems(list(param.choices))
                self.fusion_combo.setCurrentText(st.cam_params.get("fusion", param.default))
        self.fusion_combo.setEnabled(param is not None)
        self.blocks_button.setEnabled(bool(compared) if st.cam_compare else method != CAM_CHOICE)
        self.tf_combo.setEnabled(not st.cam_compare)
        self.tf_combo.setToolTip(
            "Side by side decides the methods; turn it off to pick one here"
            if st.cam_compare
            else "A method made for transformers: it reads the attention"
        )

    def _fill_compare(self) -> None:
        """The Side by side menu for this model: its methods, the default ones ticked."""
        transformer = bool(self.state.transformer_blocks())
        picked = self.state.cam_compare or side_by_side.defaults(transformer)
        self.compare_button.set_choices(side_by_side.choices(transformer), list(picked))
        self.compare_button.show_state(self.state.cam_compare)

    def _sync_method_note(self) -> None:
        """The header's Method agrees with what runs: greyed, with a note, when another choice
        decides (it read gradcam above a rollout map)."""
        st = self.state
        note = tip = ""
        if st.cam_compare:
            note = "not used: side by side"
            tip = f"Side by side runs {', '.join(st.cam_compare)}; turn it off to use one method."
        elif st.cam_method in TRANSFORMER_METHODS:
            note = f"not used: {st.cam_method} runs"
            tip = (
                f"The Transformer group's {st.cam_method} runs; set it to '{CAM_CHOICE}' "
                "to use a CAM method."
            )
        self.method_combo.setEnabled(not note)
        self.method_combo.setToolTip(tip or self._method_tip)
        self.method_note.setText(note)
        self.method_note.setToolTip(tip)
        self.method_note.setVisible(bool(note))

    def _on_layer_item(self, _item) -> None:
        self.state.set_cam(layers=self.checked_layers())

    def checked_layers(self) -> list[str]:
        """The layers ticked in the list, in list order."""
        items = (self.layer_list.item(i) for i in range(self.layer_list.count()))
        return [it.text() for it in items if it.checkState() == Qt.CheckState.Checked]

    def _on_target_text(self) -> None:
        self.state.set_target_text(self.target_edit.text())

    # -- state -> controls --------------------------------------------------------------------
    def _sync_controls(self) -> None:
        st = self.state
        with QSignalBlocker(self.method_combo):
            if st.cam_method in METHODS:
                self.method_combo.setCurrentText(st.cam_method)
        with QSignalBlocker(self.cmap_combo):
            self.cmap_combo.setCurrentText(st.colormap)
        with QSignalBlocker(self.alpha_slider):
            self.alpha_slider.setValue(round(st.alpha * 100))
        self._check_layers()
        self._sync_transformer()
        self.compare_button.show_state(st.cam_compare)
        self._sync_method_note()
        # The CAM layers list only where it decides a map: its room goes to the maps otherwise.
        cams = [m for m in st.cam_compare if m in METHODS]
        self.layer_box.setVisible(
            bool(cams) or not st.cam_compare and st.cam_method not in TRANSFORMER_METHODS
        )
        self._show_status()

    def map_layers(self) -> list[str]:
        """Ticked layers whose output is a feature map (the ones a CAM can use)."""
        tree = self.state.tree
        out = []
        for name in self.state.layers:
            node = tree.find(name) if tree is not None else None
            shape = node.out_shape if node is not None else None
            if node is not None and node.layout is not None:
                # The dry run's layout: token (ViT) and channels-last (Swin) outputs too.
                if node.layout.spatial:
                    out.append(name)
            elif shape is None or (len(shape) == 4 and shape[2] * shape[3] > 1):
                out.append(name)
        return out

    def _fill_layers(self) -> None:
        with QSignalBlocker(self.layer_list):
            self.layer_list.clear()
            for name in self.map_layers():
                item = QListWidgetItem(name, self.layer_list)
                item.setToolTip(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
        self._check_layers()

    def _check_layers(self) -> None:
        wanted = set(self.state.cam_layers)
        with QSignalBlocker(self.layer_list):
            for i in range(self.layer_list.count()):
                it = self.layer_list.item(i)
                on = it.text() in wanted
                it.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _show_target(self) -> None:
        snap, st = self.state.snapshot, self.state
        if st.target is None:
            self.target_edit.clear()
            if snap is not None and snap.target_label:
                self.target_edit.setPlaceholderText(f"default: {snap.target_label}")
            elif snap is not None and snap.target is not None:
                name = snap.target_name or snap.target
                self.target_edit.setPlaceholderText(f"top-1: {name} ({snap.target})")
            return
        if isinstance(st.target, str):  # box:i, C@mask.png, similar:IMAGE
            self.target_edit.setText(st.target)
            return
        names = (st.loaded.class_names if st.loaded else None) or []
        name = names[st.target] if 0 <= st.target < len(names) else None
        self.target_edit.setText(f"{name}" if name else str(st.target))

    def _on_display(self) -> None:
        with QSignalBlocker(self.cmap_combo):
            self.cmap_combo.setCurrentText(self.state.colormap)
        with QSignalBlocker(self.alpha_slider):
            self.alpha_slider.setValue(round(self.state.alpha * 100))
        self.redraw()

    def _running(self) -> bool:
        """A run of the interactive lane is on (a scan or Trust in the long lane is not)."""
        return self.state.worker.lane_busy("interactive")

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if self.state.cam_compare and self._running():
            self.status.setText(f"{message} (Esc cancels)")
        elif self.state.cam_method in SLOW_METHODS and total > 0 and self._running():
            self.status.setText(f"{message}: {done} / {total} channels scored (Esc cancels)")
        elif self._running():
            self.status.setText("Running… (Esc cancels)")

    def cam_notes(self) -> list[str]:
        """The last run's notes about its CAM maps (flat or empty maps and why)."""
        snap, compared = self.state.snapshot, self.compared()
        if snap is None:
            return []
        if compared is not None:  # the compared methods' notes, not the probe's own method's
            return compared.note_lines()
        return list(snap.cam_notes)  # typed: flat-map and cam-error notes

    def compared(self) -> side_by_side.SideBySide | None:
        """The side-by-side maps of the result on screen, or None (it was a one-method run)."""
        sbs = self.state.side_by_side
        return sbs if sbs is not None and sbs.snapshot is self.state.snapshot else None

    def _show_status(self) -> None:
        snap, st, compared = self.state.snapshot, self.state, self.compared()
        notes = self.cam_notes()
        self.notes_label.setText("\n".join(notes))
        self.notes_label.setVisible(bool(notes))
        if self._running():
            self.status.setText("Running… (Esc cancels)")
            return
        if snap is None:
            self.status.setText("")
            return
        name = snap.target_name or snap.target
        what = snap.target_label or f"class {name} ({snap.target})"
        if list(compared.methods if compared else ()) != list(st.cam_compare):
            self.status.setText("Out of date: run again (Ctrl+R) to compute this view.")
        elif compared is not None:
            self.status.setText(f"Side by side: {', '.join(compared.methods)} for {what}.")
        elif snap.cam_method != st.cam_method or (
            st.cam_method not in TRANSFORMER_METHODS and list(snap.cams) != list(st.cam_layers)
        ):
            self.status.setText("Out of date: run again (Ctrl+R) to compute this CAM.")
        else:
            self.status.setText(f"{snap.cam_method} for {what}.")

    # -- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """New result: take its maps and redraw."""
        snap, compared = self.state.snapshot, self.compared()
        self.maps = dict(snap.cams) if snap is not None else {}
        if compared is not None:  # one pane per compared method (and CAM layer)
            self.maps = dict(compared.maps)
        self._show_target()
        self._rebuild_panes()
        self.redraw()
        self._show_status()

    def _rebuild_panes(self) -> None:
        if list(self.panes) == list(self.maps):
            return
        for pane in self.panes.values():
            self.grid.removeWidget(pane)
            pane.deleteLater()
        self.panes = {}
        self.grid.removeWidget(self.note)
        n = len(self.maps)
        for name in self.maps:
            # Each pane has its bar, so every map gets the same room (one bar at the last
            # pane made that one smaller); below their minimum the dock scrolls.
            pane = CamPane(name, self.grid_host, colorbar=True)
            pane.setMinimumSize(PANE_MIN + BAR_W, PANE_MIN + TITLE_H)
            self.panes[name] = pane
        self._cols = 0
        self._place_panes()
        if not n:
            self.grid.addWidget(self.note, 0, 0)
        self.note.setVisible(not n)

    def _orient(self, width: int) -> None:
        """A narrow panel puts the layer list above the maps: beside them it took their room."""
        wanted = Qt.Orientation.Vertical if width < NARROW else Qt.Orientation.Horizontal
        if self.split.orientation() != wanted:
            self.split.setOrientation(wanted)
            self.layer_list.setMaximumWidth(16_777_215 if width < NARROW else 220)
            self.split.setSizes([90, 600] if width < NARROW else [150, 600])

    def _place_panes(self) -> None:
        """Lay the panes out in the columns that fit the panel's shape (again on a resize)."""
        host = self.grid_host
        cols = grid_columns(len(self.panes), host.width(), host.height())
        self._even_out(cols)
        if cols == getattr(self, "_cols", 0):
            return
        self._cols = cols
        for pane in self.panes.values():
            self.grid.removeWidget(pane)
        for i, pane in enumerate(self.panes.values()):
            self.grid.addWidget(pane, i // cols, i % cols)

    def _even_out(self, cols: int) -> None:
        """Equal panes to the pixel: what the rows (columns) cannot share goes to the margin
        (an odd height gave the first of two stacked maps one pixel more)."""
        rows = max(1, math.ceil(len(self.panes) / max(1, cols)))
        gap, host = self.grid.spacing(), self.grid_host
        right = (host.width() - gap * (cols - 1)) % max(1, cols)
        bottom = (host.height() - gap * (rows - 1)) % rows
        self.grid.setContentsMargins(0, 0, right, bottom)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        resized = event.type() == QEvent.Type.Resize
        if resized and obj is getattr(self, "split", None):
            self._orient(obj.width())
        if resized and obj is self.grid_host and getattr(self, "panes", None):
            self._place_panes()
        return super().eventFilter(obj, event)

    def redraw(self) -> None:
        """Recolour the overlays (colour map / alpha changed, or new maps)."""
        snap, st = self.state.snapshot, self.state
        self.overlays, self.figure = {}, []
        if snap is None or not self.maps:
            self.note.setText(self._why_empty())
            return
        # One renderer: the panes show the very arrays that Save, Copy and the CLI write.
        compared = self.compared()
        if compared is not None:
            self.figure = side_by_side.side_by_side_figure(compared, st.colormap, st.alpha)
        else:
            self.figure = figures.cam_figure(snap, st.colormap, st.alpha)
        bar = self.figure[-1].bar
        self._titles = {}
        for name, panel in zip(self.maps, self.figure[1:]):
            self.overlays[name] = panel.rgb
            self._titles[name] = panel.title  # side by side: "method · target"
            pane = self.panes[name]
            pane.set_rgb(panel.rgb)
            pane.set_title(self._title(name))
            pane.set_bar(bar.cmap, bar.levels)

    def _title(self, name: str) -> str:
        """The method of the map on screen; while another method computes, that too."""
        snap, st = self.state.snapshot, self.state
        if self.compared() is not None:
            return self._titles.get(name, name)
        title = f"{name} — {snap.cam_method}"
        if snap.kind is not None and snap.kind.kind != "classes" and snap.target_label:
            # "class 17 (sheep)", "detection 2 (cat)", "similarity to ref.png"
            title += f" · {snap.target_label.split(' over ')[0]}"
        if st.cam_method and st.cam_method != snap.cam_method and self._running():
            title += f" ({st.cam_method} computing…)"
        return title

    def _retitle(self) -> None:
        if self.state.snapshot is None:
            return
        for name, pane in self.panes.items():
            if name in self.maps:
                pane.set_title(self._title(name))

    def _why_empty(self) -> str:
        snap = self.state.snapshot
        if snap is None:
            return "Run the model (Ctrl+R) to see class activation maps."
        if self.compared() is not None:  # no compared method gave a map: say why
            return " ".join(self.compared().note_lines()) or "No method gave a map."
        if snap.notes:
            return snap.notes[-1]
        if not self.map_layers():
            return "CAM needs a layer with a feature-map output: tick one in the model tree."
        return "Tick a layer in the list to compute its CAM."

    # -- figures and export -------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        if self.state.snapshot is None:
            return []
        return list(self.figure) + self.concepts.panels()

    def make_arrays(self) -> dict[str, np.ndarray]:
        """Raw data behind the figure (for File ▸ Export all)."""
        out: dict[str, np.ndarray] = {}
        for name, cam in self.maps.items():
            out[f"cam/{name}/map"] = cam
            if name in self.overlays:
                out[f"cam/{name}/overlay"] = self.overlays[name]
        return out | self.concepts.arrays()

    def settings(self) -> dict:
        """Choices behind the figure (for File ▸ Export all)."""
        snap, st, compared = self.state.snapshot, self.state, self.compared()
        return {
            "method": None if compared else snap.cam_method if snap else st.cam_method,
            "layers": list(self.maps) if compared is None else [],
            "methods": list(compared.methods) if compared is not None else [],
            # Side by side: each pane's method (the figure holds these panes, not "method").
            "side_by_side": dict(compared.method_of) if compared is not None else {},
            "blocks": list(st.cam_blocks),
            "method_params": dict(st.cam_params),
            "target": snap.target if snap is not None else st.target,
            "target_name": snap.target_name if snap is not None else None,
            "colormap": st.colormap,
            "alpha": st.alpha,
            "restricted_to": list(st.condition) if st.condition else None,
        }
