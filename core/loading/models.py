"""Loading models from a spec string: torchvision, timm, Hugging Face, a factory, TorchScript."""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import sys
import urllib.error
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

import hookscope.core.demo as demo
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec

UNPICKLE_RISK = "unpickling runs code stored in the file"
"""Words in every refusal of a pickle: the app's session restore looks for them to ask."""


@dataclass
class LoadedModel:
    """A model ready to probe.

    Attributes:
        model: The module, in eval mode, on ``device``.
        name: Short display name.
        class_names: Names of the output classes, or None when unknown.
        input_spec: Input size, channels and normalisation.
        spec: The spec string it was loaded from.
        weights: Path of the state_dict file applied, if any.
        device: Where the model lives.
        scripted: True for TorchScript (no Python hooks on submodules).
        weights_source: Where the weights come from: ``"random"`` (torchvision without
            pretrained weights: predictions mean nothing), ``"pretrained"`` (torchvision's),
            ``"bundled"`` (the demo's), ``"file"`` (a state_dict passed as ``weights``),
            ``"model"`` (whatever the factory or model file holds).
        note: What the user should know about how it was loaded (a live module given no
            input size: the image goes in at its own size, unnormalised), or "".
    """

    model: nn.Module
    name: str
    class_names: list[str] | None
    input_spec: InputSpec
    spec: str = ""
    weights: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    scripted: bool = False
    weights_source: str = "model"
    note: str = ""

    @property
    def native_size(self) -> bool:
        """True when images go in at their own size (see :attr:`InputSpec.native`)."""
        return self.input_spec.native

    @property
    def random_weights(self) -> bool:
        """True when the weights are a random initialisation (say so next to every result)."""
        return self.weights_source == "random"


def pick_device(name: str = "auto") -> torch.device:
    """Resolve ``auto|cpu|cuda|mps`` to a device; one sentence when it is not available."""
    name = (name or "auto").lower()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    if name == "mps" and has_mps:
        return torch.device("mps")
    if name in ("cuda", "mps"):
        raise HookScopeError(f"Device '{name}' is not available on this machine; use --device cpu.")
    raise HookScopeError(f"Unknown device '{name}': use auto, cpu, cuda or mps.")


def load_model(
    spec: str,
    weights: str | Path | None = None,
    *,
    trust_pickle: bool = False,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a model from a spec string.

    Args:
        spec: ``demo``, ``demo:clean``, ``demo:vit``, ``demo:vit-clean`` (the ViT twins),
            ``torchvision:NAME``, ``torchvision:NAME:WEIGHTS``,
            ``timm:NAME`` (random init, seed 0; ``timm:NAME?pretrained=True`` only from the
            local cache; other ``?key=value&...`` go to ``timm.create_model``, and
            ``img_size=S`` also sets the input size), ``hf:DIR`` (a ``save_pretrained``
            folder), ``path/file.py:factory``, or a ``.pt`` file (TorchScript or pickled
            module).
        weights: Optional state_dict file applied after building (``weights_only=True``).
        trust_pickle: Allow unpickling a full module or a weights file holding Python objects
            (runs code from the file): only when the person asked for it in this run.
        device: Device name or ``torch.device``.

    Returns:
        The model in eval mode with its names and input spec.

    Raises:
        HookScopeError: With one sentence saying what failed and what to do.
    """
    spec = str(spec).strip()
    if not spec:
        raise HookScopeError("No model given: pass a spec such as demo or torchvision:resnet18.")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    if spec.startswith("live:"):
        raise HookScopeError(
            f"{spec} names a live module from a Python session, which no spec can load; pass "
            "the module itself to hookscope.view or hookscope.explain."
        )
    if spec == "demo" or spec.startswith("demo:"):
        lm = _load_demo(spec)
    elif spec.startswith("torchvision:"):
        lm = _load_torchvision(spec)
    elif spec.startswith("timm:"):
        lm = _load_timm(spec)
    elif spec.startswith("hf:"):
        lm = _load_hf(spec)
    elif ".py:" in spec or spec.endswith(".py"):
        lm = _load_factory(spec)
    else:
        lm = _load_file(spec, trust_pickle)
    if weights is not None:
        apply_state_dict(lm.model, weights, trust_pickle=trust_pickle)
        lm.weights = str(weights)
        lm.weights_source = "file"
        # The label says so: "demo (shortcut)" alone would claim the bundled weights.
        lm.name = f"{lm.name} + weights {Path(weights).name}"
    lm.spec = spec
    lm.model.eval()
    lm.model.to(dev)
    lm.device = dev
    return lm


# -- the spec forms ----------------------------------------------------------------------------
def _load_demo(spec: str) -> LoadedModel:

    variant = spec.partition(":")[2] or "shortcut"
    if variant not in demo.VARIANTS + demo.VIT_VARIANTS:
        raise HookScopeError(
            f"Unknown demo '{variant}': use demo, demo:clean, demo:vit or demo:vit-clean."
        )
    path = demo.weights_path(variant)
    if not path.exists():
        raise HookScopeError(
            f"The demo weights {path} are missing; reinstall HookScope (pip install .) or "
            "remake them with python -m hookscope.core.demo.train."
        )
    size = demo.INPUT_SIZE
    return LoadedModel(
        model=demo.load_demo(variant),
        name=f"demo ({variant})",
        class_names=list(demo.CLASS_NAMES),
        input_spec=InputSpec((size, size), 3, tuple(demo.MEAN), tuple(demo.STD)),
        weights_source="bundled",
    )


def _load_torchvision(spec: str) -> LoadedModel:
    import torchvision

    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise HookScopeError(f"Bad torchvision spec '{spec}': write torchvision:NAME[:WEIGHTS].")
    name = parts[1]
    available = torchvision.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name.lower(), available, n=4, cutoff=0.5)
        hint = ", ".join(close) if close else "resnet18, vgg16, vit_b_16"
        raise HookScopeError(f"torchvision has no model named '{name}'; try one of {hint}.")
    enum = _weights_enum(name)
    meta_weights = enum.DEFAULT if enum is not None else None
    weights = None
    if len(parts) == 3:
        weights = _pick_weights(enum, name, parts[2])
        meta_weights = weights
    kwargs = {}
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None  # random means random: no ImageNet backbone download
    try:
        # Random weights from seed 0, so the same spec is the same model in every session
        # (results, screenshots and tests repeat); the caller's RNG state is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = torchvision.models.get_model(name, weights=weights, **kwargs)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        raise HookScopeError(
            f"Could not download the pretrained weights {weights} for {name} (no network?); "
            f"download them on another machine and pass the file with --weights, or use "
            f"torchvision:{name} for random weights."
        ) from exc
    class_names, input_spec = None, InputSpec()
    if meta_weights is not None:
        cats = meta_weights.meta.get("categories")
        class_names = list(cats) if cats else None
        input_spec = _spec_from_weights(meta_weights)
    if hasattr(getattr(model, "transform", None), "image_mean"):
        # Detection models normalise inside (GeneralizedRCNNTransform): feed [0, 1] pixels.
        input_spec = InputSpec(input_spec.size, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    source = "random" if weights is None else "pretrained"
    return LoadedModel(model, name, class_names, input_spec, weights_source=source)


def _optional(module: str, extra: str):
    """Import an optional dependency, or say in one sentence how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise HookScopeError(
            f"This model needs the optional package {module}: pip install hookscope[{extra}]."
        ) from exc


def _spec_kwargs(text: str) -> dict:
    kwargs = {}
    for item in filter(None, text.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HookScopeError(f"Bad option '{item}' in the spec: write key=value.")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return kwargs


def _load_timm(spec: str) -> LoadedModel:
    name, _, query = spec[len("timm:") :].partition("?")
    name = name.strip()
    if not name:
        raise HookScopeError("Bad timm spec: write timm:NAME, e.g. timm:resnet50.")
    timm = _optional("timm", "timm")
    kwargs = _spec_kwargs(query)
    pretrained = bool(kwargs.pop("pretrained", False))
    available = timm.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=4, cutoff=0.6)
        hint = ", ".join(close) if close else "resnet50, convnext_tiny, vit_small_patch16_224"
        raise HookScopeError(f"timm has no model named '{name}'; try one of {hint}.")
    img_size = kwargs.get("img_size")
    if pretrained and not _timm_cached(name):
        raise HookScopeError(
            f"The pretrained weights of timm:{name} are not in the local cache and HookScope "
            "does not download them; fetch them once with timm (or pass a state_dict with "
            "--weights), or drop pretrained for random weights."
        )

    def create(kw):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return timm.create_model(name, pretrained=pretrained, **kw)

    try:
        with _offline():
            try:
                model = create(kwargs)
            except TypeError as exc:
                if "img_size" not in kwargs or "img_size" not in str(exc):
                    raise
                # A CNN without img_size: the size only sets the input.
                model = create({k: v for k, v in kwargs.items() if k != "img_size"})
    except Exception as exc:
        if pretrained:
            raise HookScopeError(
                f"The pretrained weights of timm:{name} are not in the local cache and "
                "HookScope does not download them; fetch them once with timm (or pass a "
                "state_dict with --weights), or drop pretrained for random weights."
            ) from exc
        raise HookScopeError(
            f"timm could not build {name}: {type(exc).__name__}: {_first_line(exc)}."
        ) from exc
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    size = cfg.get("input_size", (3, 224, 224))
    hw = (int(size[1]), int(size[2]))
    if img_size is not None:
        hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    crop = float(cfg.get("crop_pct") or 1.0)
    spec_obj = InputSpec(
        hw,
        int(size[0]),
        tuple(cfg.get("mean", IMAGENET_MEAN)),
        tuple(cfg.get("std", IMAGENET_STD)),
        int(round(min(hw) / crop)) if pretrained and crop < 1 else None,
    )
    return LoadedModel(
        model,
        name,
        _timm_names(model, pretrained),
        spec_obj,
        weights_source="pretrained" if pretrained else "random",
    )


def _timm_cached(name: str) -> bool:
    """True when timm's pretrained weights for ``name`` are already on disk (no network)."""
    try:
        cfg = importlib.import_module("timm.models").get_pretrained_cfg(name)
    except Exception:
        return False
    if cfg is None:
        return False
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        try:
            hub = importlib.import_module("huggingface_hub")
            repo, _, revision = hub_id.partition("@")
            for filename in ("model.safetensors", "pytorch_model.bin"):
                found = hub.try_to_load_from_cache(repo, filename, revision=revision or None)
                if isinstance(found, str):
                    return True
        except ImportError:
            pass
    url = getattr(cfg, "url", None)
    if url:
        return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()
    return False


def _timm_names(model, pretrained: bool) -> list[str] | None:
    if not pretrained or not getattr(model, "num_classes", 0):
        return None
    try:
        data = importlib.import_module("timm.data")
        subset = data.infer_imagenet_subset(model)
        if not subset:
            return None
        info = data.ImageNetInfo(subset)
        names = [info.index_to_description(i) for i in range(model.num_classes)]
        return names if len(names) == model.num_classes else None
    except Exception:  # label files are optional; a missing one costs names, not the model
        return None


@contextlib.contextmanager
def _offline():
    """No network for model hubs: pretrained weights only from the local cache."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_hf(spec: str) -> LoadedModel:
    path = Path(spec[len("hf:") :].strip())
    if not path.is_dir():
        raise HookScopeError(
            f"hf:{path} is not a folder; give a folder written by save_pretrained "
            "(config.json and the weights)."
        )
    if not (path / "config.json").is_file():
        raise HookScopeError(f"{path} has no config.json, so it is not a save_pretrained folder.")
    transformers = _optional("transformers", "hf")
    remote = _hf_remote_code(path)
    # trust_remote_code=False always: None would ask y/N on a terminal (or a console nobody
    # sees) and "y" would run the folder's own Python files.
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except Exception as exc:
        if remote:
            raise HookScopeError(_remote_code_refused(path, remote)) from exc
        raise HookScopeError(f"{path}/config.json could not be read: {_first_line(exc)}.") from exc
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    spec_in = _hf_input_spec(path, config)  # a bad size is one sentence before any weight loads
    try:
        with _offline():
            if cls is None:
                model = transformers.AutoModel.from_pretrained(str(path), trust_remote_code=False)
            else:
                model = cls.from_pretrained(str(path), trust_remote_code=False)
    except Exception as exc:
        if remote:
            raise HookScopeError(_remote_code_refused(path, remote)) from exc
        raise HookScopeError(
            f"Transformers could not load the model in {path} ({arch or 'AutoModel'}): "
            f"{type(exc).__name__}: {_first_line(exc)}."
        ) from exc
    return LoadedModel(model, arch or path.name, _id2label(config), spec_in)


def _hf_remote_code(path: Path) -> str | None:
    """The class a folder's config.json asks to import from its own code (``auto_map``)."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # transformers' own reading says what is wrong with the file
    auto_map = data.get("auto_map") if isinstance(data, dict) else None
    if not auto_map:
        return None
    if isinstance(auto_map, dict):
        first = next(iter(auto_map.values()), "")
        first = first[0] if isinstance(first, (list, tuple)) and first else first
        return str(first) or "custom code"
    return "custom code"


def _remote_code_refused(path: Path, what: str) -> str:
    return (
        f"{path} asks to run its own Python code ({_printable(what)}, named by auto_map in "
        "config.json), which HookScope never runs; load it yourself with "
        "trust_remote_code=True if you trust it and pass the module to hookscope.view."
    )


def _printable(text: str, limit: int = 80) -> str:
    """Text from a file, safe for a one-line sentence (no newlines or control characters)."""
    return "".join(c if c.isprintable() else "?" for c in str(text))[:limit]


def _id2label(config) -> list[str] | None:
    """Class names from a config's ``id2label``, unless they are transformers' 2 defaults."""
    labels = getattr(config, "id2label", None)
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        items = sorted((int(k), str(v)) for k, v in labels.items())
    except (TypeError, ValueError):
        return None
    if [k for k, _ in items] != list(range(len(items))):
        return None
    names = [v for _, v in items]
    if len(names) == 2 and all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None  # the placeholder of a config without labels
    return names


def _hf_input_spec(path: Path, config) -> InputSpec:
    """Input size and normalisation from preprocessor_config.json (else the config)."""
    pre = {}
    file = path / "preprocessor_config.json"
    if file.is_file():
        try:
            pre = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise HookScopeError(f"{file} is not valid JSON: {_first_line(exc)}.") from exc
    vision = getattr(config, "vision_config", None) or config
    try:
        if not isinstance(pre, dict):
            raise HookScopeError(f"It holds a {type(pre).__name__}, not a JSON object.")
        default = int(getattr(vision, "image_size", 224) or 224)
        size = _hw(pre.get("crop_size")) or _hw(pre.get("size")) or (default, default)
        channels = int(getattr(vision, "num_channels", 3) or 3)
        mean = pre.get("image_mean") or (0.5,) * channels
        std = pre.get("image_std") or (0.5,) * channels
        raw_size = pre.get("size")
        shortest = raw_size.get("shortest_edge") if isinstance(raw_size, dict) else None
        resize = int(shortest) if shortest and pre.get("do_center_crop") else None
        return InputSpec(size, channels, mean, std, resize)
    except (HookScopeError, TypeError, ValueError) as exc:  # e.g. "size": 0 or "big"
        text = str(exc).rstrip(".") if isinstance(exc, HookScopeError) else _first_line(exc)
        raise HookScopeError(
            f"The input size or normalisation in {path.name}/{file.name} (or its config) is "
            f"not usable: {text[:1].lower()}{text[1:]}."
        ) from None


def _hw(value) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return (int(value["height"]), int(value["width"]))
        if "shortest_edge" in value:
            return (int(value["shortest_edge"]), int(value["shortest_edge"]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    return None


def _weights_enum(name: str):
    import torchvision

    try:
        return torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _pick_weights(enum, name: str, text: str):
    if enum is None:
        raise HookScopeError(f"torchvision has no pretrained weights for {name}.")
    if text.upper() == "DEFAULT":
        return enum.DEFAULT
    key = text.split(".")[-1]
    if key in enum.__members__:
        return enum[key]
    raise HookScopeError(
        f"Unknown weights '{text}' for {name}; choose DEFAULT or one of "
        f"{', '.join(enum.__members__)}."
    )


def _spec_from_weights(w) -> InputSpec:
    try:
        tf = w.transforms()
        crop = tf.crop_size[0] if isinstance(tf.crop_size, (list, tuple)) else tf.crop_size
        resize = tf.resize_size[0] if isinstance(tf.resize_size, (list, tuple)) else None
        return InputSpec((int(crop), int(crop)), 3, tuple(tf.mean), tuple(tf.std), resize)
    except (AttributeError, TypeError, IndexError):
        return InputSpec()


def _load_factory(spec: str) -> LoadedModel:
    path_text, _, factory = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    path = Path(path_text)
    if not factory:
        raise HookScopeError(f"Name the factory function too, as in {path}:build.")
    if not path.is_file():
        raise HookScopeError(f"Model file {path} does not exist.")
    mod_name = f"hookscope_user_{abs(hash(str(path.resolve())))}"
    try:
        mod_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module
        with _script_folder_first(path):
            mod_spec.loader.exec_module(module)
    except SystemExit as exc:  # sys.exit() in a model file must not end HookScope silently
        raise HookScopeError(_exit_sentence(f"Running {path.name}", exc)) from exc
    except Exception as exc:
        raise HookScopeError(
            f"Running {path.name} failed with {type(exc).__name__}: {_first_line(exc)}."
        ) from exc
    build = getattr(module, factory, None)
    if not callable(build):
        raise HookScopeError(f"{path.name} has no function named '{factory}'.")
    try:
        with _script_folder_first(path):  # a factory may import its siblings lazily too
            model = build()
    except SystemExit as exc:
        raise HookScopeError(
            _exit_sentence(f"The factory {factory}() in {path.name}", exc)
        ) from exc
    except Exception as exc:
        raise HookScopeError(
            f"The factory {factory}() in {path.name} raised {type(exc).__name__}: "
            f"{_first_line(exc)}."
        ) from exc
    if not isinstance(model, nn.Module):
        raise HookScopeError(
            f"The factory {factory}() in {path.name} returned {type(model).__name__}, "
            "not a torch.nn.Module."
        )
    names = getattr(model, "class_names", None) or getattr(module, "CLASS_NAMES", None)
    if not names and getattr(model, "config", None) is not None:
        names = _id2label(model.config)  # a Hugging Face model built by the factory
    spec_obj = getattr(model, "input_spec", None) or getattr(module, "INPUT_SPEC", None)
    try:
        spec_in = _input_spec(spec_obj, model)
    except HookScopeError as exc:
        text = str(exc)
        raise HookScopeError(
            f"The INPUT_SPEC of {path.name} is not usable: {text[:1].lower()}{text[1:]}"
        ) from None
    return LoadedModel(model, f"{path.stem}:{factory}", _names(names), spec_in)


def _exit_sentence(who: str, exc: SystemExit) -> str:
    code = exc.code if isinstance(exc.code, int) or exc.code is None else repr(exc.code)[:60]
    return (
        f"{who} called sys.exit({'' if code is None else code}) instead of returning a model; "
        "a model file should only define the model and its factory."
    )


@contextlib.contextmanager
def _script_folder_first(path: Path):
    """Import ``path`` as Python runs a script: its own folder first on ``sys.path``.

    A project split over files (``from arch import Net`` beside the factory) then loads; the
    entry is removed after the import so it cannot shadow other modules later.
    """
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def _load_file(spec: str, trust_pickle: bool) -> LoadedModel:
    path = Path(spec)
    if not path.exists():
        raise HookScopeError(
            f"Model file {path} does not exist; give a path, demo, or torchvision:NAME."
        )
    if path.is_dir() or path.stat().st_size == 0:
        raise HookScopeError(f"{path} is empty or a folder, not a model file.")
    if _is_torchscript(path):
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise HookScopeError(
                f"{path.name} looks like TorchScript but could not be loaded: {_first_line(exc)}."
            ) from exc
        lm = LoadedModel(model, path.stem, None, _input_spec(None, model), scripted=True)
        return lm
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_pickled_object(path, exc):
            raise HookScopeError(
                f"{path.name} is not a model file HookScope can read (TorchScript archive, "
                "pickled module or state_dict); it may be truncated or not a PyTorch file."
            ) from exc
        if not trust_pickle:
            raise HookScopeError(
                f"{path.name} is a pickled Python object and {UNPICKLE_RISK}, so HookScope "
                "refuses it; if you trust its source, use --trust-pickle (Trust pickle in "
                "the dialog)."
            ) from exc
        obj = _unpickle_trusted(path)
    except Exception as exc:
        raise HookScopeError(
            f"{path.name} is not a model file HookScope can read (TorchScript archive, "
            f"pickled module or state_dict): {_first_line(exc)}."
        ) from exc
    if isinstance(obj, nn.Module):
        return LoadedModel(
            obj, path.stem, _names(getattr(obj, "class_names", None)), _input_spec(None, obj)
        )
    if isinstance(obj, dict):
        raise HookScopeError(
            f"{path.name} holds weights (a state_dict), not a model; pass the architecture "
            f"as the model and this file as weights, e.g. --model torchvision:resnet18 "
            f"--weights {path.name}."
        )
    raise HookScopeError(f"{path.name} holds a {type(obj).__name__}, not a torch.nn.Module.")


def _unpickle_trusted(path: Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise HookScopeError(
            f"Unpickling {path.name} failed with {type(exc).__name__}: {_first_line(exc)}."
        ) from exc


def _is_pickled_object(path: Path, exc: Exception) -> bool:
    """True when the safe loader refused real Python objects (not garbage bytes)."""
    if "unsupported global" in str(exc).lower():
        return True
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"  # a bare pickle stream starts with PROTO


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


# -- weights ---------------------------------------------------------------------------------
def apply_state_dict(model: nn.Module, weights: str | Path, *, trust_pickle: bool = False) -> None:
    """Load a state_dict file into ``model``; one sentence naming any mismatch.

    Args:
        model: The module to fill.
        weights: A file written by ``torch.save(model.state_dict())``.
        trust_pickle: Also unpickle Python objects stored beside the tensors (runs code from
            the file; only when the person asked for it in this run).
    """
    path = Path(weights)
    if not path.is_file():
        raise HookScopeError(f"Weights file {path} does not exist.")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_pickled_object(path, exc):
            raise HookScopeError(
                f"{path.name} is not a weights file HookScope can read safely (a state_dict "
                "saved with torch.save); it may be truncated or not a PyTorch file."
            ) from exc
        if not trust_pickle:
            # torch's own text stops mid-way on one line; this says what it means in full.
            raise HookScopeError(
                f"{path.name} is not a weights file HookScope can read safely: it holds Python "
                f"objects besides tensors and {UNPICKLE_RISK}, so HookScope refuses it; only "
                "if you trust its source, --trust-pickle (Trust pickle in the dialog) runs it."
            ) from exc
        state = _unpickle_trusted(path)
    except Exception as exc:
        raise HookScopeError(
            f"{path.name} is not a weights file HookScope can read safely (a state_dict saved "
            f"with torch.save): {_first_line(exc)}."
        ) from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HookScopeError(f"{path.name} does not hold a state_dict (name → tensor).")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}  # saved from DataParallel
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    clashes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or clashes:
        bits = []
        if missing:
            bits.append(f"missing {', '.join(missing[:3])}")
        if unexpected:
            bits.append(f"unexpected {', '.join(unexpected[:3])}")
        if clashes:
            bits.append(f"shape clash {', '.join(clashes[:2])}")
        raise HookScopeError(
            f"The weights in {path.name} do not fit this model ({'; '.join(bits)}); "
            "check that they were saved from the same architecture."
        )
    model.load_state_dict(state)


# -- helpers ---------------------------------------------------------------------------------
def _names(names) -> list[str] | None:
    return [str(n) for n in names] if names else None


def _input_spec(obj, model: nn.Module) -> InputSpec:
    if isinstance(obj, InputSpec):
        return obj
    if isinstance(obj, dict):
        unknown = sorted(map(str, set(obj) - {"size", "channels", "mean", "std", "resize"}))
        if unknown:
            raise HookScopeError(
                f"An input spec has no field '{unknown[0]}'; use size, channels, mean, std "
                "and resize."
            )
        size = obj.get("size", 224)
        ch = obj.get("channels", 3)
        if not isinstance(ch, int) or isinstance(ch, bool) or not 1 <= ch <= 64:
            raise HookScopeError(
                f"An input's channel count must be a whole number from 1 to 64, not {ch!r}."
            )
        default_mean, default_std = _default_norm(ch)
        return InputSpec(
            size,
            ch,
            obj.get("mean", default_mean),
            obj.get("std", default_std),
            obj.get("resize"),
        )
    if obj is not None:
        raise HookScopeError(
            f'An input spec must be a dict such as {{"size": 224}}, not {type(obj).__name__}.'
        )
    ch = _first_conv_channels(model)
    mean, std = _default_norm(ch)
    if hasattr(getattr(model, "transform", None), "image_mean"):
        # Detection models normalise inside (GeneralizedRCNNTransform): feed [0, 1] pixels.
        mean, std = (0.0,) * ch, (1.0,) * ch
    return InputSpec((224, 224), ch, mean, std)


def _default_norm(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (0.5,) * channels, (0.5,) * channels


def _first_conv_channels(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")[:200]
