"""Save and load a whole experiment as JSON: model, image and its edits, layers, edits, GUI.

Paths are stored as given. On load, a path that no longer exists is also looked for next to
the session file (sessions are often moved together with their images); if it is in neither
place, loading fails with one sentence naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hookscope.core.errors import HookScopeError

SESSION_VERSION = 1


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
        if not isinstance(version, int) or version > SESSION_VERSION:
            raise HookScopeError(
                f"{source} was saved by a newer HookScope (format {version}, this one reads up "
                f"to {SESSION_VERSION}); update HookScope to open it."
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("image_edits", "layers", "cam_layers", "grad_edits", "act_edits"):
            if key in kwargs and not isinstance(kwargs[key], list):
                raise HookScopeError(f"{source} has a broken '{key}' entry (expected a list).")
        for key in ("cam_params", "gui"):
            if key in kwargs and not isinstance(kwargs[key], dict):
                raise HookScopeError(f"{source} has a broken '{key}' entry (expected a dict).")
        return cls(**kwargs)

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


def _target_file(target) -> tuple[str, str, str] | None:
    """The file a target names (``C@mask.png``'s mask, ``similar:IMAGE``'s image), or None."""
    if not isinstance(target, str):
        return None
    text = target.strip()
    if text.lower().startswith("similar:"):
        return ("reference image", "target", text[len("similar:") :].strip())
    if "@" in text and not text.lower().startswith("box:"):
        return ("target mask", "target", text.partition("@")[2].strip())
    return None


def _is_model_file(spec: str) -> bool:
    spec = str(spec)
    if spec == "demo" or spec.startswith(("demo:", "torchvision:")):
        return False
    return ".py:" in spec or spec.endswith((".py", ".pt", ".pth", ".ts"))


def _file_part(spec: str) -> Path:
    return Path(spec.rpartition(":")[0] if ".py:" in spec else spec)
