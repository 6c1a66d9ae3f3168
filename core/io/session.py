"""Save and load a whole experiment as JSON: model, image and its edits, layers, edits, GUI.

Paths are stored as given. On load, a path that no longer exists is also looked for next to
the session file (sessions are often moved together with their images); if it is in neither
place, loading fails with one sentence naming the file.

A session is data from a file the user only opened: every field is checked for its type and
range when it is read (one sentence naming the field), sizes are bounded before anything is
allocated, and it never carries trust: whoever opens it decides, in that run, whether a
factory or a pickle it names may run (:meth:`Session.code_to_run`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hookscope.core.engine.targets import clicked_at
from hookscope.core.errors import HookScopeError

SESSION_VERSION = 1
MAX_INPUT_SIDE = 2048
"""Largest input height or width a session may ask for (as the app's size boxes allow)."""
_MAX_COORD = 1_000_000  # pixel coordinates in image edits (images are far smaller)
_IMAGE_OPS = ("solid", "occlude", "paste")
_GRAD_OPS = ("scale", "clip", "zero", "noise")
_ACT_OPS = ("zero", "scale", "mean", "topk")


@dataclass
class Session:
    """Everything needed to redo an experiment.

    Attributes:
        model: Model spec (``demo``, ``torchvision:resnet18``, ``file.py:build``, ``m.pt``).
        weights: State-dict file, or None.
        image: Input image path, or None (the demo's default).
        image_edits: Image edit dicts in order (``paste`` / ``solid`` / ``occlude``, see
            ``core.experiments.interventions.apply_image_edits``).
        layers: Ticked layers.
        target: Class index or name, a target in the ``--target`` grammar (``box:2``,
            ``15@mask.png``, ``similar:ref.jpg``), or None for the default.
        cam_method: Key of ``core.methods.cam.CAM_METHODS``, or None.
        cam_layers: Layers to compute CAMs for.
        cam_params: Extra CAM parameters (batch size, smoothing...).
        input_spec: Input size and normalisation (``InputSpec.to_dict()``) when edited, or
            None for the model's own.
        grad_edits: Gradient edit dicts (``GradEdit.to_dict()``).
        act_edits: Activation edit dicts (``ActEdit.to_dict()``).
        gui: Opaque data of the GUI (dock layout as base64, zoom...); stored as is.
        version: Format version of the file.
        live: For a session saved from a live module (``hookscope.view``): its class path
            (``class``), state-dict hash (``state_hash``) and name; ``model`` is then its
            ``live:`` spec, which only ``hookscope.view(model, session=...)`` can reopen.
    """

    model: str = "demo"
    weights: str | None = None
    image: str | None = None
    image_edits: list[dict] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    target: int | str | None = None
    cam_method: str | None = None
    cam_layers: list[str] = field(default_factory=list)
    cam_params: dict[str, Any] = field(default_factory=dict)
    input_spec: dict[str, Any] | None = None
    grad_edits: list[dict] = field(default_factory=list)
    act_edits: list[dict] = field(default_factory=list)
    gui: dict[str, Any] = field(default_factory=dict)
    version: int = SESSION_VERSION
    live: dict[str, Any] | None = None

    # -- JSON ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The session as indented JSON text."""
        try:
            return json.dumps(asdict(self), indent=1, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise HookScopeError(
                f"The session holds something JSON cannot store ({exc}); keep the GUI data to "
                "strings, numbers, lists and dicts."
            ) from exc

    @classmethod
    def from_json(cls, text: str, source: str = "the session") -> Session:
        """Parse JSON text; unknown keys (from newer versions) are ignored.

        Raises:
            HookScopeError: Not JSON, not a session, or written by a newer HookScope.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HookScopeError(
                f"{source} is not valid JSON (line {exc.lineno}: {exc.msg}); it may be damaged."
            ) from exc
        if not isinstance(data, dict) or "model" not in data:
            raise HookScopeError(f"{source} is JSON but not a HookScope session (no model).")
        version = data.get("version", 1)
        if not _is_int(version) or version < 1:
            raise HookScopeError(
                f"{source} has a broken 'version' entry ({_show(version)}, expected a whole "
                f"number such as {SESSION_VERSION}); it was not written by HookScope."
            )
        if version > SESSION_VERSION:
            raise HookScopeError(
                f"{source} was saved by a newer HookScope (format {version}, this one reads up "
                f"to {SESSION_VERSION}); update HookScope to open it."
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            check_fields(kwargs)
        except _Broken as exc:
            who = "The session" if source == "the session" else source
            raise HookScopeError(
                f"{who} has a broken '{exc.key}' entry ({exc.why}); fix it in the file or "
                "save the session again."
            ) from None
        return cls(**kwargs)

    def code_to_run(self) -> tuple[str, str] | None:
        """The code opening this session would run, as ``(what, path)``, or None.

        A ``file.py:factory`` spec imports and runs that file: the person opening the session
        must agree to it in this run (a pickled model file is refused by ``load_model``
        unless ``trust_pickle`` is given, which a session never gives).
        """
        spec = str(self.model)
        if ".py:" in spec or spec.endswith(".py"):
            return ("factory", str(_file_part(spec)))
        return None

    def require_trust(self, factory: bool, hint: str = "; add --trust-factory if you trust it"):
        """Refuse, in one sentence, a session whose factory the person did not allow.

        Args:
            factory: The person's own say in this run (a flag, a dialog), never the file's.
            hint: How to allow it, ending the sentence (the command line's flag by default).

        Raises:
            HookScopeError: The session names a factory and ``factory`` is False.
        """
        code = self.code_to_run()
        if code is not None and not factory:
            raise HookScopeError(
                f"The session's model is built by running {_show(code[1], 200)[1:-1]}, which "
                f"was not allowed, so the session was not opened{hint}."
            )

    def drop_unknown_layers(self, names) -> list[str]:
        """Keep only layers and edits on modules ``names`` has; one sentence per dropped one.

        A session may name layers its model does not have (edited by hand, or written for
        another model): they are dropped here, before anything hooks or prints them.
        """
        names = set(names)
        notes = []
        for key in ("layers", "cam_layers"):
            bad = [n for n in getattr(self, key) if n not in names]
            if bad:
                setattr(self, key, [n for n in getattr(self, key) if n in names])
                notes.append(
                    f"The session's {_WHAT[key]} {', '.join(_show(n) for n in bad[:3])} "
                    "name no layer of this model and were dropped."
                )
        for key in ("grad_edits", "act_edits"):
            for d in [d for d in getattr(self, key) if d.get("layer") not in names]:
                getattr(self, key).remove(d)
                notes.append(
                    f"The session's {_WHAT[key]} on {_show(d.get('layer'))} names no layer "
                    "of this model and was dropped."
                )
        return notes

    def live_problem(self, module=None, source: str = "the session") -> str | None:
        """Why ``module`` cannot reopen this session, in one sentence; None when it can.

        A session from a live module needs that module again: the same class and the same
        weights (state-dict hash). A session from a spec needs no module (None).
        """
        if not self.live:
            return None
        saved = self.live.get("class", "?")
        if module is None:
            return (
                f"{source} was saved from a live model ({saved}); pass it to "
                "hookscope.view(model, session=...) to reopen it."
            )
        from hookscope.core.loading.live import describe_module

        now = describe_module(module)
        if now["class"] != saved:
            return (
                f"{source} was saved from a live {saved}, not a {now['class']}; pass that "
                "model to hookscope.view(model, session=...)."
            )
        if now["state_hash"] != self.live.get("state_hash"):
            return (
                f"The weights of this {now['class']} differ from the ones {source} was saved "
                "with; load those weights into it, then reopen the session."
            )
        return None

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the session as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        text = self.to_json()
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            raise HookScopeError(
                f"Could not save the session to {path} ({exc.strerror or exc}); choose a "
                "folder you can write to."
            ) from exc
        return path

    @classmethod
    def load(cls, path: str | Path, *, check_files: bool = True) -> Session:
        """Read a session file and, by default, make sure every file it refers to exists.

        Raises:
            HookScopeError: Unreadable file, bad content, or a referenced file that moved.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise HookScopeError(f"Session file {path} does not exist.") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise HookScopeError(f"Could not read the session file {path} ({exc}).") from exc
        session = cls.from_json(text, source=path.name)
        if check_files:
            session.locate_files(path.parent)
        return session

    def files(self) -> list[tuple[str, str, str]]:
        """Referenced files as ``(what, dotted field, path)``."""
        out = []
        if _is_model_file(self.model):
            out.append(("model file", "model", self.model))
        if self.weights:
            out.append(("weights file", "weights", self.weights))
        if self.image:
            out.append(("image", "image", self.image))
        for i, d in enumerate(self.image_edits):
            for key, what in (("patch", "pasted patch"), ("mask", "patch mask")):
                if isinstance(d, dict) and d.get(key):
                    out.append((what, f"image_edits.{i}.{key}", str(d[key])))
        target_file = _target_file(self.target)
        if target_file is not None:
            out.append(target_file)
        return out

    def locate_files(self, folder: str | Path | None = None) -> list[str]:
        """Check referenced files; take a moved one from ``folder`` (by name) if it is there.

        Args:
            folder: Where else to look, normally the session file's folder.

        Returns:
            Notes on paths that were updated (empty when nothing moved).

        Raises:
            HookScopeError: Naming the first file found in neither place.
        """
        notes = []
        for what, key, text in self.files():
            p = _file_part(text) if key == "model" else Path(text)
            if p.exists():
                continue
            candidates = []
            if folder is not None:
                folder = Path(folder)
                candidates = [] if p.is_absolute() else [folder / p]
                candidates.append(folder / p.name)
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                where = f" or next to the session file in {folder}" if folder is not None else ""
                raise HookScopeError(
                    f"The session's {what} {text} is missing (moved or deleted); put it back "
                    f"there{where}, or edit the path in the session file."
                )
            new = str(found) if key != "model" else str(found) + text[len(str(p)) :]
            self._set(key, new)
            notes.append(f"{what} {text} was not there; using {new}.")
        return notes

    def _set(self, key: str, value: str) -> None:
        if key == "target":  # keep the grammar around the moved file: C@mask.png, similar:
            text = str(self.target)
            if text.lower().startswith("similar:"):
                self.target = text[: len("similar:")] + value
            else:
                self.target = text.partition("@")[0] + "@" + value
        elif key.startswith("image_edits."):
            _, i, sub = key.split(".")
            self.image_edits[int(i)][sub] = value
        else:
            setattr(self, key, value)


_WHAT = {
    "layers": "layers",
    "cam_layers": "CAM layers",
    "grad_edits": "gradient edit",
    "act_edits": "activation edit",
}


class _Broken(Exception):
    """A session field with the wrong type or value (``key``: where, ``why``: what)."""

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")
        self.key, self.why = key, why


def _show(value: Any, limit: int = 40) -> str:
    """A value from a file, safe inside a one-line sentence (newlines escaped, cut short)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is not class 1


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _need(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise _Broken(key, why)


def _str_list(value: Any, key: str) -> None:
    _need(isinstance(value, list), key, f"{_show(value)}, expected a list of layer names")
    for v in value:
        _need(isinstance(v, str), key, f"{_show(v)} is not a layer name")


def check_fields(data: dict) -> None:
    """Check the type and range of every known session field in ``data`` (a JSON object).

    Raises:
        _Broken: Naming the first bad field and what is wrong with it.
    """
    _need(isinstance(data.get("model"), str) and data["model"].strip(), "model", "no spec")
    for key in ("weights", "image"):
        value = data.get(key)
        _need(value is None or isinstance(value, str), key, f"{_show(value)}, expected a path")
    for key in ("cam_params", "gui"):
        _need(isinstance(data.get(key, {}), dict), key, "expected a JSON object")
    live = data.get("live")
    _need(
        live is None or (isinstance(live, dict) and isinstance(live.get("class"), str)),
        "live",
        "expected a JSON object naming the live model's class",
    )
    _check_choices(data, "")
    _check_edit_list(data.get("grad_edits", []), "grad_edits", "grad")
    _check_edit_list(data.get("act_edits", []), "act_edits", "act")
    params = data.get("cam_params") or {}
    alpha = params.get("alpha")
    _need(
        alpha is None or (_is_number(alpha) and 0 <= alpha <= 1),
        "cam_params.alpha",
        f"{_show(alpha)}, expected an overlay opacity from 0 to 1",
    )
    colormap = params.get("colormap")
    _need(colormap is None or isinstance(colormap, str), "cam_params.colormap", "not a name")
    _check_gui(data.get("gui") or {})


def _check_choices(data: dict, prefix: str) -> None:
    """The run choices a session and its pinned baseline share."""
    for key in ("layers", "cam_layers"):
        _str_list(data.get(key, []), prefix + key)
    target = data.get("target")
    _need(
        target is None or isinstance(target, str) or (_is_int(target) and target >= 0),
        prefix + "target",
        f"{_show(target)} is not a class index (0, 1, ...) or a target text",
    )
    method = data.get("cam_method")
    if method is not None:
        from hookscope.core.methods import explainers
        from hookscope.core.methods.cam import CAM_METHODS

        # The CAM dock also runs the transformer methods (rollout, chefer...).
        known = [*CAM_METHODS, *explainers.names(explainers.TRANSFORMER)]
        _need(
            method in known,
            prefix + "cam_method",
            f"unknown CAM method {_show(method)}; HookScope has {', '.join(known)}",
        )
    edits = data.get("image_edits", [])
    _need(isinstance(edits, list), prefix + "image_edits", "expected a list")
    for i, d in enumerate(edits):
        _check_image_edit(d, f"{prefix}image_edits.{i}")
    if data.get("input_spec") is not None:
        _check_input_spec(data["input_spec"], prefix + "input_spec")


def _check_image_edit(d: Any, key: str) -> None:
    _need(isinstance(d, dict), key, f"{_show(d)}, expected an image edit object")
    op = d.get("op")
    _need(op in _IMAGE_OPS, key, f"unknown image edit {_show(op)}; use {', '.join(_IMAGE_OPS)}")
    colour = d.get("colour", [0, 0, 0])
    _need(
        isinstance(colour, list)
        and len(colour) in (3, 4)
        and all(_is_int(c) and 0 <= c <= 255 for c in colour),
        key + ".colour",
        f"{_show(colour)}, expected [r, g, b] from 0 to 255",
    )
    if op == "occlude":
        box = d.get("box")
        _need(
            isinstance(box, list)
            and len(box) == 4
            and all(_is_number(v) and abs(v) <= _MAX_COORD for v in box)
            and box[0] <= box[2]
            and box[1] <= box[3],
            key + ".box",
            f"{_show(box)}, an occlusion needs a box [left, top, right, bottom] in pixels",
        )
    if op == "paste":
        _need(isinstance(d.get("patch"), str), key + ".patch", "no patch image path")
        _need(d.get("mask") is None or isinstance(d["mask"], str), key + ".mask", "not a path")
        xy, size = d.get("xy", [0, 0]), d.get("size")
        _need(
            isinstance(xy, list)
            and len(xy) == 2
            and all(_is_int(v) and abs(v) <= _MAX_COORD for v in xy),
            key + ".xy",
            f"{_show(xy)}, expected [x, y]",
        )
        _need(
            size is None
            or (
                isinstance(size, list)
                and len(size) == 2
                and all(_is_int(v) and 1 <= v <= MAX_INPUT_SIDE for v in size)
            ),
            key + ".size",
            f"{_show(size)}, expected [width, height] from 1 to {MAX_INPUT_SIDE}",
        )


def _check_input_spec(spec: Any, key: str) -> None:
    _need(isinstance(spec, dict), key, f"{_show(spec)}, expected an object with size, mean, std")
    size = spec.get("size")
    _need(
        isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 1 for v in size),
        key + ".size",
        f"{_show(size)}, expected [height, width]",
    )
    _need(
        max(size) <= MAX_INPUT_SIDE,
        key + ".size",
        f"{size[0]}×{size[1]} is larger than the {MAX_INPUT_SIDE}×{MAX_INPUT_SIDE} pixels "
        "HookScope runs a model at",
    )
    channels = spec.get("channels", 3)
    _need(channels in (1, 3) and _is_int(channels), key + ".channels", "expected 1 or 3")
    for name in ("mean", "std"):
        v = spec.get(name)
        _need(
            isinstance(v, list) and len(v) == channels and all(_is_number(x) for x in v),
            f"{key}.{name}",
            f"{_show(v)}, expected {channels} finite numbers",
        )
    _need(all(x != 0 for x in spec["std"]), key + ".std", "a standard deviation of 0")
    resize = spec.get("resize")
    _need(
        resize is None or (_is_int(resize) and 1 <= resize <= MAX_INPUT_SIDE),
        key + ".resize",
        f"{_show(resize)}, expected a side from 1 to {MAX_INPUT_SIDE}",
    )


def _check_edit_list(edits: Any, key: str, kind: str) -> None:
    _need(isinstance(edits, list), key, "expected a list")
    for i, d in enumerate(edits):
        where = f"{key}.{i}"
        _need(isinstance(d, dict), where, f"{_show(d)}, expected an edit object")
        _need(d.get("kind", kind) == kind, where + ".kind", f"expected {kind!r}")
        _need(isinstance(d.get("layer"), str), where + ".layer", "no layer name")
        ops = _GRAD_OPS if kind == "grad" else _ACT_OPS
        op = d.get("op", "zero")
        _need(op in ops, where + ".op", f"unknown edit {_show(op)}; use {', '.join(ops)}")
        value = d.get("value")
        _need(value is None or _is_number(value), where + ".value", "not a finite number")
        if kind == "grad":
            _need(_is_int(d.get("seed", 0)), where + ".seed", "not a whole number")
            continue
        chans = d.get("channels")
        _need(
            chans is None
            or (isinstance(chans, list) and all(_is_int(c) and c >= 0 for c in chans)),
            where + ".channels",
            f"{_show(chans)}, expected channel indices (0, 1, ...)",
        )
        k = d.get("k")
        _need(k is None or (_is_int(k) and k >= 0), where + ".k", "not a count (0, 1, ...)")
        _need(d.get("on", "output") in ("output", "input"), where + ".on", "use output or input")


def _check_gui(gui: dict) -> None:
    layout = gui.get("layout")
    if layout is not None:
        try:
            ok = isinstance(layout, str)
            base64.b64decode(layout if ok else "", validate=True)
        except (binascii.Error, ValueError):
            ok = False
        _need(ok, "gui.layout", "the dock layout is not base64 text")
    order = gui.get("edit_order", [])
    _need(
        isinstance(order, list) and all(k in ("grad", "act") for k in order),
        "gui.edit_order",
        "expected a list of grad / act",
    )
    selected = gui.get("selected_layer")
    _need(selected is None or isinstance(selected, str), "gui.selected_layer", "not a name")
    baseline = gui.get("baseline")
    if baseline is not None:
        _need(isinstance(baseline, dict), "gui.baseline", "expected the pinned run's choices")
        image = baseline.get("image")
        _need(image is None or isinstance(image, str), "gui.baseline.image", "not a path")
        _check_choices(baseline, "gui.baseline.")
        edits = baseline.get("edits", [])
        _need(isinstance(edits, list), "gui.baseline.edits", "expected a list")
        _check_edit_list(
            [d for d in edits if isinstance(d, dict) and d.get("kind") == "grad"],
            "gui.baseline.edits",
            "grad",
        )
        _check_edit_list(
            [d for d in edits if not (isinstance(d, dict) and d.get("kind") == "grad")],
            "gui.baseline.edits",
            "act",
        )


def _target_file(target) -> tuple[str, str, str] | None:
    """The file a target names (``C@mask.png``'s mask, ``similar:IMAGE``'s image), or None."""
    if not isinstance(target, str):
        return None
    text = target.strip()
    if text.lower().startswith("similar:"):
        return ("reference image", "target", text[len("similar:") :].strip())
    if "@" in text and not text.lower().startswith("box:"):
        where = text.partition("@")[2].strip()
        if clicked_at(where) is not None:  # C@(row,col): a clicked region, no file
            return None
        return ("target mask", "target", where)
    return None


def _is_model_file(spec: str) -> bool:
    spec = str(spec)
    if spec == "demo" or spec.startswith(("demo:", "torchvision:", "live:")):
        return False
    return ".py:" in spec or spec.endswith((".py", ".pt", ".pth", ".ts"))


def _file_part(spec: str) -> Path:
    return Path(spec.rpartition(":")[0] if ".py:" in spec else spec)
