"""Activations dock: every channel of the selected layer call as one mosaic, plus a close-up."""

from __future__ import annotations

import numpy as np

from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.widgets.layer_picker import LayerPicker
from hookscope.gui.widgets.mosaic import FeatureView


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
            return
        title = call.layer + (
            f" (call {call.call})" if len(self.state.snapshot.layers[call.layer]) > 1 else ""
        )
        self.view.set_array(call.activation, title)

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
