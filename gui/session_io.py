"""File ▸ Save session… / Open session…: the window's experiment as a core.io.session.Session.

Saved: model spec + weights, image path and its edits, ticked layers, target, CAM method and
layers (+ colour map, alpha), gradient / activation edits, and the dock layout (base64 of
``saveState``) in the ``gui`` dict. Loading restores all of it; a file that moved is one
sentence in a dialog and the current state stays as it was.
"""

from __future__ import annotations

import base64
from pathlib import Path

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QFileDialog, QMessageBox

from core.errors import HookScopeError
from core.experiments.interventions import apply_image_edits
from core.io.session import Session
from core.loading.images import load_image
from gui.docks.base import LAYOUT_VERSION

SESSION_FILTER = "HookScope session (*.json);;All files (*)"


def session_from_window(window) -> Session:
    """The window's current experiment as a Session."""
    st = window.state
    args = st.model_args or {}
    layout = bytes(window.saveState(_layout_version()))
    return Session(
        model=args.get("spec") or "demo",
        weights=args.get("weights"),
        image=st.image_path,
        image_edits=[dict(d) for d in st.image_edits] if st.image_path else [],
        layers=list(st.layers),
        target=st.target,
        cam_method=st.cam_method,
        cam_layers=list(st.cam_layers),
        cam_params={"colormap": st.colormap, "alpha": st.alpha},
        grad_edits=[dict(d) for d in st.edits if d.get("kind") == "grad"],
        act_edits=[dict(d) for d in st.edits if d.get("kind") == "act"],
        gui={
            "layout": base64.b64encode(layout).decode("ascii"),
            "edit_order": [d.get("kind") for d in st.edits],
            "selected_layer": st.selected_layer,
            "trust_pickle": bool(args.get("trust_pickle")),
        },
    )


def save_session(window, path: str | Path) -> Path | None:
    """Write the session; an error is one sentence in the status bar."""
    try:
        out = session_from_window(window).save(path)
    except HookScopeError as exc:
        window.state.errorRaised.emit(str(exc))
        return None
    window.state.statusMessage.emit(f"Session saved to {out}.")
    return out


def open_session(window, path: str | Path) -> bool:
    """Read a session and restore it; a bad or moved file keeps the current state.

    Returns:
        False when the file could not be used (the dialog said why).
    """
    try:
        session = Session.load(path)
        image = None
        if session.image:
            image = apply_image_edits(load_image(session.image), session.image_edits)
    except (HookScopeError, OSError) as exc:
        QMessageBox.warning(window, "HookScope", str(exc))
        return False
    restore(window, session, image)
    return True


def _edits(session: Session) -> list[dict]:
    """Gradient and activation edits back in the order the user added them."""
    order = session.gui.get("edit_order") or []
    grads, acts = list(session.grad_edits), list(session.act_edits)
    out = []
    for kind in order:
        source = grads if kind == "grad" else acts
        if source:
            out.append(source.pop(0))
    return [dict(d) for d in out + grads + acts]


def restore(window, session: Session, image=None) -> None:
    """Put a loaded session into the window (the model loads in the worker first)."""
    st = window.state

    def rest() -> None:
        was = st.auto_run
        st.auto_run = False  # one run at the end, not one per restored choice
        try:
            if image is not None:
                st.set_image(image, session.image)
                st.image_edits = [dict(d) for d in session.image_edits]
                st.imageChanged.emit()
            st.set_layers(list(session.layers) or st.layers)
            st.set_cam(method=session.cam_method, layers=list(session.cam_layers))
            params = session.cam_params or {}
            st.set_display(params.get("colormap"), params.get("alpha"))
            target = session.target
            if isinstance(target, str):
                st.set_target_text(target)
            else:
                st.set_target(target)
            st.set_edits(_edits(session))
            selected = session.gui.get("selected_layer")
            if selected in st.layers:
                st.select(selected, 0)
            layout = session.gui.get("layout")
            if layout:
                data = QByteArray(base64.b64decode(layout))
                window.restoreState(data, _layout_version())
        finally:
            st.auto_run = was
        st.run()
        st.statusMessage.emit("Session restored.")

    args = st.model_args or {}
    if (
        st.loaded is not None
        and args.get("spec") == session.model
        and args.get("weights") == session.weights
    ):
        rest()
        return
    st.load_model(
        session.model,
        session.weights,
        bool(session.gui.get("trust_pickle")),
        layers=list(session.layers) or None,
        on_done=rest,
    )


def save_dialog(window) -> None:
    path, _ = QFileDialog.getSaveFileName(window, "Save session", "session.json", SESSION_FILTER)
    if path:
        save_session(window, path)


def open_dialog(window) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open session", "", SESSION_FILTER)
    if path:
        open_session(window, path)


def _layout_version() -> int:

    return LAYOUT_VERSION
