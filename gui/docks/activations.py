"""Activations dock: every channel of the selected layer call as one mosaic, plus a close-up;
with a channel atlas of the layer (Dataset ▸ Build atlas…), the channel's top dataset crops."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QLabel, QListView, QListWidget, QListWidgetItem

from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.atlas import AtlasView, adopt_atlases, atlas_for
from hookscope.gui import recent_atlases
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.layer_picker import LayerPicker
from hookscope.gui.widgets.mosaic import FeatureView

CROP_SIDE = 72
"""Side of a crop's icon in the atlas strip."""


def _square(path: str) -> QPixmap:
    """The crop at ``path`` fitted and centred in a transparent CROP_SIDE² square.

    A crop clipped at the image's edge is not square; as a bare icon it came out smaller and
    sat lower than its neighbours, so the captions of the strip did not line up.
    """
    crop = QPixmap(path).scaled(
        CROP_SIDE,
        CROP_SIDE,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    square = QPixmap(CROP_SIDE, CROP_SIDE)
    square.fill(Qt.GlobalColor.transparent)
    painter = QPainter(square)
    try:
        painter.drawPixmap((CROP_SIDE - crop.width()) // 2, (CROP_SIDE - crop.height()) // 2, crop)
    finally:
        painter.end()
    return square


class ActivationsDock(BaseDock):
    """What the selected hooked layer output for the current image."""

    TITLE = "Activations"
    OBJECT_NAME = "ActivationsDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.picker = LayerPicker(state, self)
        self.add_header_widget(self.picker)
        self.header.setStretch(0, 1)
        self.view = FeatureView(self, signed=False, what="activation")
        self.view.set_colormap(state.colormap)
        self.body.addWidget(self.view, 1)
        self.atlas_label = QLabel("", self)
        self.atlas_label.setWordWrap(True)
        self.atlas_strip = QListWidget(self)
        self.atlas_strip.setViewMode(QListView.ViewMode.IconMode)
        self.atlas_strip.setFlow(QListView.Flow.LeftToRight)
        self.atlas_strip.setWrapping(False)
        self.atlas_strip.setIconSize(QSize(CROP_SIDE, CROP_SIDE))
        self.atlas_strip.setMovement(QListView.Movement.Static)
        self.atlas_strip.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.atlas_strip.setFixedHeight(CROP_SIDE + 40)
        self.atlas_strip.setToolTip(
            "The images of the atlas folder where this channel fires most, cropped to the "
            "receptive field around its strongest cell (rank · value)"
        )
        self.body.addWidget(self.atlas_label)
        self.body.addWidget(self.atlas_strip)
        self._atlas: AtlasView | None = None
        self._adopted: weakref.WeakSet = weakref.WeakSet()  # models offered the remembered atlases
        self.view.channelSelected.connect(self.show_atlas)
        self.view.channelSelected.connect(self.restrict)
        state.worker.finished.connect(
            lambda _id, kind, _r: self.show_atlas(self.view.selected) if kind == "atlas" else None
        )
        self.on_result(self.refresh)
        state.selectionChanged.connect(lambda *_: self.refresh())
        state.displayChanged.connect(lambda: self.view.set_colormap(self.state.colormap))
        state.modelChanged.connect(lambda: self.view.set_array(None, message="Loading…"))
        self.refresh()

    def current(self):
        """The selected :class:`~core.display.snapshot.LayerCall`, or None."""
        snap, st = self.state.snapshot, self.state
        if snap is None or not st.selected_layer:
            return None
        return snap.call(st.selected_layer, st.selected_call)

    def refresh(self) -> None:
        call = self.current()
        if call is None:
            layer = self.state.selected_layer
            msg = (
                f"No record for '{layer}' yet: run the model (Ctrl+R)."
                if layer
                else "Tick a layer in the model tree to see its activations."
            )
            self.view.set_array(None, message=msg)
            self.show_atlas(self.view.selected)
            return
        title = call.layer + (
            f" (call {call.call})" if len(self.state.snapshot.layers[call.layer]) > 1 else ""
        )
        self.view.set_array(call.activation, title)
        self.show_atlas(self.view.selected)

    def restrict(self, channel: int) -> None:
        """A clicked channel: the CAM panel shows the CAM restricted to it (CRP-style)."""
        call = self.current()
        if call is not None and call.is_map:
            self.state.set_condition((call.layer, "channel", int(channel)))

    # -- the channel atlas --------------------------------------------------------------------
    def atlas(self) -> AtlasView | None:
        """The atlas of the selected layer for the loaded model, or None."""
        loaded, layer = self.state.loaded, self.state.selected_layer
        model = loaded.model if loaded is not None else None
        folder = atlas_for(model, layer)
        if folder is None and model is not None and model not in self._adopted:
            self._adopted.add(model)  # once per model: the check hashes its weights
            spec = self.state.model_args.get("spec") or loaded.name
            adopt_atlases(model, spec, recent_atlases.remembered())
            folder = atlas_for(model, layer)
        if folder is None:
            self._atlas = None
            return None
        if self._atlas is None or self._atlas.folder != Path(folder):
            try:
                self._atlas = AtlasView(folder)
            except (HookScopeError, OSError) as exc:
                self.atlas_label.setText(str(exc))
                return None
        return self._atlas

    def show_atlas(self, channel: int) -> None:
        """Fill the strip with ``channel``'s top crops, or say how to build an atlas."""
        self.atlas_strip.clear()
        layer = self.state.selected_layer
        atlas = self.atlas()
        if atlas is None:
            self.atlas_strip.setVisible(False)
            self.atlas_label.setText(
                f"No channel atlas of '{layer}' yet: Dataset ▸ Build atlas… ranks a folder's "
                "images for every channel."
                if layer
                else ""
            )
            return
        entries = atlas.top(int(channel))
        self.atlas_strip.setVisible(True)
        self.atlas_label.setText(
            f"Atlas: top {len(entries)} images of channel {channel} in "
            f"{atlas.folder.name} (crop = receptive field around the strongest cell)"
        )
        for e in entries:
            item = QListWidgetItem(QIcon(_square(str(e.crop))), f"#{e.rank} {e.value:.3g}")
            x0, y0, x1, y1 = e.box
            item.setToolTip(f"{e.path}\nvalue {e.value:.4g} at cell ({e.row}, {e.col})")
            item.setToolTip(item.toolTip() + f"\ncrop x {x0}–{x1}, y {y0}–{y1}")
            item.setData(Qt.ItemDataRole.UserRole, e)
            self.atlas_strip.addItem(item)

    def atlas_entries(self) -> list:
        """The :class:`~core.jobs.atlas.AtlasEntry` shown in the strip, rank 0 first."""
        strip = self.atlas_strip
        return [strip.item(i).data(Qt.ItemDataRole.UserRole) for i in range(strip.count())]

    # -- figures and export -------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        return self.view.panels()

    def make_arrays(self) -> dict[str, np.ndarray]:
        """Raw data behind the figure (for File ▸ Export all)."""
        return self.view.arrays("activations")

    def settings(self) -> dict:
        """Choices behind the figure (for File ▸ Export all)."""
        return {
            "layer": self.state.selected_layer,
            "call": self.state.selected_call,
            **self.view.settings(),
        }
