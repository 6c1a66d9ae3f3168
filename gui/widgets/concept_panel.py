"""The CAM dock's concept part: each concept's map as a stack, and the restricted map.

Shown when the layer has concepts (a scan folder's ``concepts.json``, opened or found in the
Dataset dock: ``core.jobs.concept_view.concepts_for``) or when the user clicked a channel
(Activations dock) or a concept here: ``AppState.condition``. The numbers come from
``core.jobs.concept_view.concept_view_job``, run in the worker's interactive lane after each
run; this widget only draws them.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.jobs.concept_view import ConceptView, concept_view_job, concepts_for
from hookscope.gui import figures
from hookscope.gui.qtutil import rgb_to_pixmap
from hookscope.gui.widgets.panes import ImagePane

ICON = 84
"""Side of a concept map in the stack (px)."""
KIND = "concept-view"
"""Worker job kind (interactive lane; a newer one replaces a running one)."""


def pct(share: float) -> str:
    """A share as a whole percentage; a small negative one is "0%", not "-0%"."""
    return f"{share:.0%}".replace("-0%", "0%") if np.isfinite(share) else "–"


class ConceptPanel(QWidget):
    """Concept stack and restricted map for the state's current image.

    Signals:
        shown(): New numbers are on screen (tests wait for it).
    """

    shown = Signal()

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.view: ConceptView | None = None
        self.request: tuple | None = None  # (layer, restrict) of the view asked for
        self._job: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(2)
        head = QHBoxLayout()
        self.label = QLabel("", self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.clear_button = QToolButton(self)
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("No restricted map (click a channel or a concept for one)")
        self.clear_button.clicked.connect(lambda: self.state.set_condition(None))
        head.addWidget(self.label, 1)
        head.addWidget(self.clear_button)
        lay.addLayout(head)
        row = QHBoxLayout()
        self.stack = QListWidget(self)
        self.stack.setViewMode(QListView.ViewMode.IconMode)
        self.stack.setFlow(QListView.Flow.LeftToRight)
        self.stack.setWrapping(True)
        self.stack.setResizeMode(QListView.ResizeMode.Adjust)
        self.stack.setMovement(QListView.Movement.Static)
        self.stack.setIconSize(QSize(ICON, ICON))
        self.stack.setGridSize(QSize(ICON + 14, ICON + 34))
        self.stack.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.stack.setMinimumHeight(ICON + 40)
        self.stack.setToolTip(
            "Where each concept is in this image (its amount, one scale for all), with its "
            "share of the target's Σ activation × gradient; click one for its restricted map"
        )
        self.stack.itemClicked.connect(self._on_item)
        self.restricted = ImagePane("Restricted map", self, colorbar=True)
        self.restricted.setMinimumSize(150, 150)
        self.restricted.setMaximumWidth(260)
        row.addWidget(self.stack, 1)
        row.addWidget(self.restricted)
        lay.addLayout(row, 1)
        state.resultChanged.connect(lambda _snap: self.update_view())
        state.conceptsChanged.connect(lambda _layer: self.update_view())
        state.conditionChanged.connect(lambda _c: self.update_view())
        state.displayChanged.connect(self.redraw)
        state.modelChanged.connect(self.update_view)
        state.worker.cancelled.connect(self._on_cancelled)
        self.update_view()

    # -- what to compute ----------------------------------------------------------------------
    def wanted(self) -> tuple[str, object, tuple[str, int] | None] | None:
        """``(layer, concepts or None, restriction or None)`` to show, or None for nothing."""
        st, snap = self.state, self.state.snapshot
        if st.loaded is None or snap is None or st.image is None:
            return None
        model, cond = st.loaded.model, st.condition
        if cond is not None:
            return cond[0], concepts_for(model, cond[0]), (cond[1], cond[2])
        for layer in list(snap.cams) or list(st.cam_layers):
            found = concepts_for(model, layer)
            if found is not None:
                return layer, found, None
        return None

    def update_view(self) -> None:
        """Ask the worker for the concepts / restricted map of the current image (or hide)."""
        want = self.wanted()
        if want is None:
            self.view, self.request = None, None
            self.setVisible(False)
            return
        layer, concepts, restrict = want
        snap, st = self.state.snapshot, self.state
        self.setVisible(True)
        self.request = (layer, restrict)
        self._job = None  # the job this replaces is cancelled by the submit: not a user cancel
        what = f"{restrict[0]} {restrict[1]}" if restrict else "concepts"
        self.label.setText(f"Computing {what} of {layer}…")
        target = snap.resolved_target if snap.resolved_target is not None else snap.target
        self._job = st.worker.submit(
            concept_view_job,
            st.loaded,
            st.image,
            st.input_spec,
            layer,
            method=snap.cam_method or st.cam_method,
            target=target,
            concepts=concepts,
            restrict=restrict,
            kind=KIND,
            on_result=self._on_view,
            on_error=self._on_error,
        )

    def _on_view(self, view: ConceptView) -> None:
        self.view, self._job = view, None
        self.redraw()
        self.shown.emit()

    def _on_error(self, message: str) -> None:
        self.view, self._job = None, None
        self.label.setText(message)
        self.stack.clear()
        self.restricted.set_rgb(None)
        self.shown.emit()

    def _on_cancelled(self, job_id: int, _kind: str) -> None:
        if job_id == self._job:  # Esc: say so instead of "Computing…" for ever
            self._job = None
            self.label.setText("Cancelled: run again (Ctrl+R) or click a concept or channel.")

    def _on_item(self, item: QListWidgetItem) -> None:
        k = item.data(Qt.ItemDataRole.UserRole)
        if self.view is not None and k is not None:
            self.state.set_condition((self.view.layer, "concept", int(k)))

    # -- drawing ------------------------------------------------------------------------------
    def order(self) -> list[int]:
        """Concept ids in the stack's order: highest importance first."""
        v = self.view
        return [] if v is None else [int(k) for k in np.argsort(-v.importance, kind="stable")]

    def redraw(self) -> None:
        v, snap, st = self.view, self.state.snapshot, self.state
        self.stack.clear()
        if v is None or snap is None:
            return
        self.label.setText(self.describe())
        self.stack.setVisible(bool(len(v.importance)))
        share = v.share()
        for k in self.order():
            rgb = figures.overlay(snap.input_image, v.maps[k], st.colormap, st.alpha)
            item = QListWidgetItem(QIcon(rgb_to_pixmap(rgb)), f"concept {k}\n{pct(share[k])}")
            item.setToolTip(
                f"concept {k}: importance {v.importance[k]:.4g} = Σ_p U_k(p)·(w_k·∂y/∂A(p)), "
                f"{share[k]:.1%} of Σ A·∂y/∂A = {v.total:.4g}"
            )
            item.setData(Qt.ItemDataRole.UserRole, k)
            self.stack.addItem(item)
            item.setSelected(v.restricted_label == f"concept {k}")  # the one the map is of
        self.restricted.setVisible(v.restricted is not None)
        if v.restricted is not None:
            rgb = figures.overlay(snap.input_image, v.restricted, st.colormap, st.alpha)
            self.restricted.set_rgb(rgb)
            self.restricted.set_title(f"{v.method} · {v.restricted_label}")
            self.restricted.set_bar(st.colormap, (0.0, 1.0))

    def describe(self) -> str:
        """One line about what is on screen."""
        v = self.view
        parts = []
        if len(v.importance):
            top = self.order()[0]
            parts.append(
                f"<b>Concepts of {v.layer}</b> ({v.folder.name if v.folder else ''}): concept "
                f"{top} carries <b>{v.share()[top]:.0%}</b> of Σ A·∂y/∂A (the residual "
                f"{v.residual / v.total:.0%})"
                if v.total
                else f"<b>Concepts of {v.layer}</b>: the target's Σ A·∂y/∂A is 0"
            )
        if v.restricted is not None:
            part = f" ({pct(v.restricted_sum / v.cam_sum)} of the map's sum)" if v.cam_sum else ""
            parts.append(f"Restricted to {v.restricted_label} of {v.layer}{part}")
        if self.state.edits:  # the job runs the model as loaded
            parts.append(f"(without the {len(self.state.edits)} gradient/activation edits)")
        return "<br>".join(parts + list(v.notes))

    def panels(self) -> list[figures.Panel]:
        """The stack and the restricted map as figure panels (Save / Copy)."""
        v, snap, st = self.view, self.state.snapshot, self.state
        if v is None or snap is None or self.isHidden():
            return []
        out = []
        for k in self.order():
            rgb = figures.overlay(snap.input_image, v.maps[k], st.colormap, st.alpha)
            out.append(figures.Panel(f"concept {k} ({pct(v.share()[k])})", rgb))
        if v.restricted is not None:
            rgb = figures.overlay(snap.input_image, v.restricted, st.colormap, st.alpha)
            bar = figures.ColorBar(st.colormap, 0.0, 1.0)
            out.append(figures.Panel(f"{v.method} · {v.restricted_label}", rgb, bar))
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers behind the stack and the restricted map (File ▸ Export all)."""
        v = self.view
        if v is None or self.isHidden():
            return {}
        out = {}
        if len(v.importance):
            key = f"cam/{v.layer}/concepts"
            out |= {f"{key}/maps": v.maps, f"{key}/importance": v.importance}
            out[f"{key}/total_residual"] = np.asarray([v.total, v.residual])
        if v.restricted is not None:
            out[f"cam/{v.layer}/restricted/{v.restricted_label.replace(' ', '_')}"] = v.restricted
        return out
