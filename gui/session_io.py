"""File ▸ Save session… / Open session…: the window's experiment as a core.io.session.Session.

Saved: model spec + weights, image path and its edits, input size and normalisation, ticked
layers, target, CAM method and layers (+ colour map, alpha, the Transformer group's blocks and
head fusion, the Side by side methods), gradient / activation edits in the order they were
added, the pinned Compare baseline (the choices that made it, rerun on open), and the dock
layout (base64 of ``saveState``) in the ``gui`` dict. Loading restores all of it, so the
reopened run gives the same numbers to the last digit; a file that moved is one sentence in a
dialog and the current state stays as it was.

A session never carries trust. Reopening one that names a ``file.py:factory`` or a pickled
model asks first, showing the file (from the command line, ``--trust-factory`` /
``--trust-pickle`` decide instead); layers and edits it names that the model lacks are dropped
with one sentence each, so nothing from the file reaches a hook or the Hook code panel.
"""

from __future__ import annotations

import base64
from pathlib import Path

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QMessageBox

from hookscope.core.engine.targets import RegionTarget
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import apply_image_edits
from hookscope.core.io.session import Session
from hookscope.core.jobs.side_by_side import read_choices
from hookscope.core.loading.images import load_image
from hookscope.core.loading.models import UNPICKLE_RISK
from hookscope.core.loading.spec import InputSpec
from hookscope.gui import filedialogs
from hookscope.gui.docks.base import LAYOUT_VERSION

SESSION_FILTER = "HookScope session (*.json);;All files (*)"


def session_from_window(window) -> Session:
    """The window's current experiment as a Session."""
    st = window.state
    args = st.model_args or {}
    layout = bytes(window.saveState(_layout_version()))
    spec = st.input_spec
    compare = _compare_dock(window)
    baseline = getattr(compare, "baseline_choices", None) if compare is not None else None
    return Session(
        model=args.get("spec") or "demo",
        weights=args.get("weights"),
        image=st.image_path,
        image_edits=[dict(d) for d in st.image_edits] if st.image_path else [],
        layers=list(st.layers),
        target=st.target,
        cam_method=st.cam_method,
        cam_layers=list(st.cam_layers),
        cam_params={
            "colormap": st.colormap,
            "alpha": st.alpha,
            # The Transformer group and Side by side (core.jobs.side_by_side.read_choices).
            "blocks": list(st.cam_blocks),
            "method_params": dict(st.cam_params),
            "side_by_side": list(st.cam_compare),
        },
        grad_edits=[dict(d) for d in st.edits if d.get("kind") == "grad"],
        act_edits=[dict(d) for d in st.edits if d.get("kind") == "act"],
        input_spec=spec.to_dict() if spec is not None else None,
        gui={
            "layout": base64.b64encode(layout).decode("ascii"),
            "edit_order": [d.get("kind") for d in st.edits],
            "selected_layer": st.selected_layer,
            # No trust_pickle: whoever opens the session decides that, in that run.
            "baseline": baseline,
        },
        live=_live_description(st),
    )


def _live_description(st) -> dict | None:
    """A live module's class and state-dict hash (now: it may have trained since it loaded)."""
    live = (st.model_args or {}).get("live")
    if not live or st.loaded is None:
        return None
    from hookscope.core.loading.live import describe_module

    return {**describe_module(st.loaded.model), "name": live.get("name")}


def _live_module(st):
    """The loaded module when it came from ``hookscope.view``, else None."""
    live = st.loaded is not None and (st.model_args or {}).get("live")
    return st.loaded.model if live else None


def _compare_dock(window):
    return next((d for d in window.docks if d.objectName() == "CompareDock"), None)


def save_session(window, path: str | Path) -> Path | None:
    """Write the session; an error is one sentence in the status bar."""
    try:
        session = session_from_window(window)
        session.target = _keep_region(session.target, Path(path))
        out = session.save(path)
    except HookScopeError as exc:
        window.state.errorRaised.emit(str(exc))
        return None
    window.state.statusMessage.emit(f"Session saved to {out}.")
    return out


def _keep_region(target, path: Path):
    """A clicked region lives in memory: write its mask next to the session file.

    The session then names it in the grammar (``C@session-region-r40-c72.png``), so the CLI's
    ``--target`` and a reopened session use exactly the clicked pixels.
    """
    if not isinstance(target, RegionTarget):
        return target
    kept = path.with_name(f"{path.stem}-region-r{target.row}-c{target.col}.png")
    try:
        target.save(kept)
    except OSError as exc:
        raise HookScopeError(
            f"Could not save the clicked region next to the session as {kept} "
            f"({exc.strerror or exc}); choose a folder you can write to."
        ) from exc
    return f"{target.category}@{kept}"


def ask(window, question: str) -> bool:
    """Yes/No dialog (default No); tests replace this function."""
    answer = QMessageBox.question(
        window,
        "HookScope",
        question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def open_session(window, path: str | Path, trust: dict | None = None) -> bool:
    """Read a session and restore it; a bad or moved file keeps the current state.

    Args:
        window: The main window.
        path: The session file.
        trust: None to ask in a dialog before running code the session names (a factory or
            a pickled model); from the command line ``{"factory": bool, "pickle": bool}``
            (``--trust-factory`` / ``--trust-pickle``) decides and errors go to the status
            bar (``errorRaised``) instead of dialogs.

    Returns:
        False when the file could not be used (the dialog or status bar said why).
    """
    try:
        session, image, baseline = read_session(path)
        _agree_to_code(window, session, trust)
        problem = session.live_problem(_live_module(window.state), Path(path).name)
        if problem:
            raise HookScopeError(problem)
    except (HookScopeError, OSError) as exc:
        if trust is None:
            QMessageBox.warning(window, "HookScope", str(exc))
        else:
            window.state.errorRaised.emit(str(exc))
            window.state.loadFailed.emit(str(exc))
        return False
    restore(window, session, image, baseline, trust=trust)
    return True


def read_session(path: str | Path) -> tuple[Session, object, dict | None]:
    """``(session, image, baseline)``: the file, its edited image and its pinned baseline."""
    session = Session.load(path)
    image = None
    if session.image:
        image = apply_image_edits(load_image(session.image), session.image_edits)
    baseline = session.gui.get("baseline")
    if baseline:
        baseline = dict(baseline, pil=_edited_image(baseline, Path(path).parent))
    return session, image, baseline


def _agree_to_code(window, session: Session, trust: dict | None) -> None:
    """Ask (or read the flag) before a session's factory runs; refusing is one sentence."""
    code = session.code_to_run()
    st = window.state
    if code is None or (st.loaded is not None and st.model_args.get("spec") == session.model):
        return  # nothing to run, or the model is already the one loaded (restore reuses it)
    if trust is not None:
        session.require_trust(bool(trust.get("factory")))
        return
    agreed = ask(
        window,
        f"This session builds its model by running the Python file {code[1]} "
        f"({session.model}). Run it only if you trust where it came from. Run it?",
    )
    session.require_trust(agreed, hint="")


def _edited_image(choices: dict, folder: Path):
    """The baseline's input image (looked for next to the session too, like the session's)."""
    path = choices.get("image")
    if not path:
        return None
    if not Path(path).is_file() and (folder / Path(path).name).is_file():
        path = str(folder / Path(path).name)
    if not Path(path).is_file():
        raise HookScopeError(
            f"The pinned baseline's image {path} is missing; put it back or unpin before saving."
        )
    return apply_image_edits(load_image(path), choices.get("image_edits") or [])


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


def _apply(st, choices: dict, image) -> None:
    """Put run choices (``AppState.run_choices()`` form) into the state, without running."""
    if image is not None:
        st.set_image(image, choices.get("image"))
        st.image_edits = [dict(d) for d in choices.get("image_edits") or []]
        st.imageChanged.emit()
    # Back to the model's own spec when none was saved: the same size and normalisation.
    spec = choices.get("input_spec")
    st.set_input_spec(InputSpec.from_dict(spec) if spec else st.loaded.input_spec)
    st.set_layers(list(choices.get("layers") or []) or st.layers)
    st.set_cam(method=choices.get("cam_method"), layers=list(choices.get("cam_layers") or []))
    target = choices.get("target")
    if isinstance(target, str):
        st.set_target_text(target)
    else:
        st.set_target(target)
    st.set_edits([dict(d) for d in choices.get("edits") or []])


def _restore_methods(st, params: dict) -> None:
    """The Transformer group's blocks and options and the Side by side methods, checked
    against the loaded model (a dropped entry is one sentence)."""
    choices, notes = read_choices(params, st.transformer_blocks())
    st.set_cam(blocks=choices["blocks"], params=choices["params"])
    st.set_compare(choices["compare"])
    for note in notes:
        st.errorRaised.emit(note)


def _session_choices(session: Session) -> dict:
    return {
        "image": session.image,
        "image_edits": session.image_edits,
        "input_spec": session.input_spec,
        "layers": session.layers,
        "target": session.target,
        "cam_method": session.cam_method,
        "cam_layers": session.cam_layers,
        "edits": _edits(session),
    }


def restore(
    window, session: Session, image=None, baseline: dict | None = None, trust: dict | None = None
) -> None:
    """Put a loaded session into the window (the model loads in the worker first).

    With a pinned baseline, its choices run first and are pinned in the Compare dock, then the
    session's own choices run: both numbers are what they were when the session was saved.
    A pickled model file is only unpickled when the person agrees now (``trust`` as in
    :func:`open_session`); the session file's own say is never asked.
    """
    st = window.state

    def quietly(fn) -> None:
        was = st.auto_run
        st.auto_run = False  # one run at the end, not one per restored choice
        try:
            fn()
        finally:
            st.auto_run = was

    def current() -> None:
        def put() -> None:
            _apply(st, _session_choices(session), image)
            params = session.cam_params or {}
            st.set_display(params.get("colormap"), params.get("alpha"))
            _restore_methods(st, params)
            selected = session.gui.get("selected_layer")
            if selected in st.layers:
                st.select(selected, 0)
            layout = session.gui.get("layout")
            if layout:
                data = QByteArray(base64.b64decode(layout))
                window.restoreState(data, _layout_version())

        quietly(put)
        st.run()
        st.statusMessage.emit("Session restored.")

    def rest() -> None:
        _drop_unknown_layers(st, session, baseline)
        compare = _compare_dock(window)
        if not baseline or compare is None:
            current()
            return

        def pinned(_snap) -> None:
            st.resultChanged.disconnect(pinned)
            compare.pin()
            current()

        quietly(lambda: _apply(st, baseline, baseline.get("pil")))
        st.resultChanged.connect(pinned)
        st.run()

    args = st.model_args or {}
    if session.live:  # the caller checked it is the loaded live module (live_problem)
        rest()
        return
    if (
        st.loaded is not None
        and args.get("spec") == session.model
        and args.get("weights") == session.weights
    ):
        rest()
        return

    def load(trust_pickle: bool) -> None:
        st.load_model(
            session.model,
            session.weights,
            trust_pickle,
            layers=list(session.layers) or None,
            on_done=rest,
            on_error=lambda message: failed(message, trust_pickle),
            quiet=True,  # failed() says it: a refused pickle is a question, not a warning
        )

    def failed(message: str, trusted: bool) -> None:
        if UNPICKLE_RISK in message and not trusted and trust is None:
            files = " and ".join(f for f in (session.model, session.weights) if f)
            if ask(
                window,
                f"This session's model ({files}) is a pickled Python object: opening it runs "
                "code stored in the file. Run it only if you trust where it came from. Run it?",
            ):
                load(True)
            else:
                st.errorRaised.emit(message)
            return
        st.errorRaised.emit(message)
        st.loadFailed.emit(message)

    load(bool(trust and trust.get("pickle")))


def _drop_unknown_layers(st, session: Session, baseline: dict | None) -> None:
    """Drop layers and edits the loaded model does not have, one sentence each."""
    names = {n.name for n in st.tree.nodes()} if st.tree is not None else set()
    notes = session.drop_unknown_layers(names)
    if baseline:
        kept = [d for d in baseline.get("edits") or [] if d.get("layer") in names]
        if len(kept) != len(baseline.get("edits") or []):
            notes.append("The pinned baseline's edits on layers this model lacks were dropped.")
        baseline["edits"] = kept
        for key in ("layers", "cam_layers"):
            baseline[key] = [n for n in baseline.get(key) or [] if n in names]
    for note in notes:
        st.errorRaised.emit(note)


def save_dialog(window) -> None:
    path = filedialogs.save_file(window, "Save session", "session.json", SESSION_FILTER)
    if path:
        save_session(window, path)


def open_dialog(window) -> None:
    path = filedialogs.open_file(window, "Open session", SESSION_FILTER)
    if path:
        open_session(window, path)


def _layout_version() -> int:

    return LAYOUT_VERSION
