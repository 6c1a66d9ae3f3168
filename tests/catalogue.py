"""The bad-input catalogue: one table, run through the core API, the CLI and the GUI.

Each case builds its files in a temporary folder and says which sentence the user must see.
A case whose ``message`` is None must simply work (1×1, CMYK, 16-bit and animated images).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import urllib.error
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image


@dataclass
class Bad:
    """One bad input.

    Attributes:
        id: Short name for the test id.
        kind: What the user was doing: "model", "image" or "run".
        make: Builds files in a folder and returns overrides of :data:`DEFAULTS`.
        message: Regex the one-sentence error must match; None means the input must work.
        offline: Patch torch.hub so downloads fail as they do without network.
        marker: File a malicious payload would create; it must never appear.
        note: For a case that must work, a regex one of the run's notes must match (a float
            TIFF's NaN pixels are said, not hidden).
    """

    id: str
    kind: str
    make: Callable[[Path], dict]
    message: str | None
    offline: bool = False
    marker: str | None = None
    extra: dict = field(default_factory=dict)
    note: str | None = None


DEFAULTS = {
    "spec": "torchvision:resnet18",
    "weights": None,
    "trust_pickle": False,
    "image": None,  # filled with a good image by `prepare`
    "layers": ["layer4"],
    "target": None,
    "cam": False,
    "device": "cpu",
    # An option of another subcommand (section 3 of issue 22): the CLI runs ``command`` with
    # ``flags``; the core API calls ``core(lm, x, fields)``; the app calls ``app(state)``
    # (None: the app has no field that takes this value, e.g. its spin boxes cannot hold NaN).
    "command": None,
    "flags": [],
    "core": None,
    "app": "default",
}


def good_image(folder: Path) -> str:
    path = folder / "good.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(path)
    return str(path)


def _write(folder: Path, name: str, data: bytes | str) -> str:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def _torch_file(folder, name, obj, cut=False):
    path = folder / name
    torch.save(obj, path)
    if cut:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return str(path)


def _factory(folder, body):
    path = folder / "net.py"
    path.write_text("import torch\nfrom torch import nn\n" + body)
    return str(path)


class Payload:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _png_zero(folder):
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    return _write(folder, "zero.png", data)


def _image(folder, name, img, **save):
    path = folder / name
    img.save(path, **save)
    return str(path)


def _animated(folder):
    frames = [Image.new("RGB", (32, 32), c) for c in ((200, 0, 0), (0, 200, 0))]
    path = folder / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return str(path)


UNUSED = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.spare = nn.Conv2d(4, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))

def build():
    return Net()
"""

FORWARDS = """
class Net(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        y = self.head(self.conv(x).mean((2, 3)))
        if self.mode == "raise":
            raise ValueError("the model is broken on purpose")
        if self.mode == "nan":
            return y * float("nan")
        if self.mode == "inf":
            return y + float("inf")
        if self.mode == "text":
            return "not a tensor"
        return y

def raises():
    return Net("raise")

def nan():
    return Net("nan")

def inf():
    return Net("inf")

def text():
    return Net("text")

def grey():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

INPUT_SPEC = {"size": 32, "channels": 3}
"""


def _offline(folder):
    return {"spec": "torchvision:resnet18:DEFAULT"}


CASES: list[Bad] = [
    # -- model files --
    Bad(
        "missing-model", "model", lambda d: {"spec": str(d / "nope.pt")}, r"nope\.pt does not exist"
    ),
    Bad("empty-model", "model", lambda d: {"spec": _write(d, "empty.pt", b"")}, "empty"),
    Bad(
        "random-bytes-model",
        "model",
        lambda d: {"spec": _write(d, "noise.pt", np.random.default_rng(1).bytes(4096))},
        "noise.pt is not a model file",
    ),
    Bad(
        "truncated-model",
        "model",
        lambda d: {"spec": _torch_file(d, "cut.pt", {"w": torch.zeros(1000)}, cut=True)},
        "cut.pt is not a model file",
    ),
    Bad("folder-as-model", "model", lambda d: {"spec": str(d)}, "is empty or a folder"),
    Bad(
        "factory-missing",
        "model",
        lambda d: {"spec": _factory(d, UNUSED) + ":make"},
        "has no function named 'make'",
    ),
    Bad(
        "factory-raises",
        "model",
        lambda d: {"spec": _factory(d, "def build():\n  1/0\n") + ":build"},
        r"build\(\) in net.py raised ZeroDivisionError",
    ),
    Bad(
        "factory-not-module",
        "model",
        lambda d: {"spec": _factory(d, "def build():\n  return [1]\n") + ":build"},
        "returned list, not a torch.nn.Module",
    ),
    Bad(
        "factory-syntax-error",
        "model",
        lambda d: {"spec": _factory(d, "def build(:\n") + ":build"},
        "Running net.py failed with SyntaxError",
    ),
    Bad(
        "unknown-torchvision",
        "model",
        lambda d: {"spec": "torchvision:resnet19"},
        "torchvision has no model named 'resnet19'",
    ),
    Bad(
        "unknown-weights-name",
        "model",
        lambda d: {"spec": "torchvision:resnet18:IMAGENET9"},
        "Unknown weights 'IMAGENET9'",
    ),
    Bad(
        "offline-pretrained",
        "model",
        _offline,
        "Could not download the pretrained weights",
        offline=True,
    ),
    Bad(
        "untrusted-pickle",
        "model",
        lambda d: {"spec": _torch_file(d, "evil.pt", Payload(d / "pwned"))},
        "refuses it",
        marker="pwned",
    ),
    Bad(
        "untrusted-raw-pickle",
        "model",
        lambda d: {"spec": _write(d, "evil.pkl", pickle.dumps(Payload(d / "pwned")))},
        "refuses it",
        marker="pwned",
    ),
    Bad(
        "weights-other-arch",
        "model",
        lambda d: {"weights": _torch_file(d, "r34.pt", torchvision.models.resnet34().state_dict())},
        r"do not fit this model \(unexpected layer1\.2",
    ),
    Bad("weights-missing", "model", lambda d: {"weights": str(d / "w.pt")}, "w.pt does not exist"),
    Bad(
        "weights-garbage",
        "model",
        lambda d: {"weights": _write(d, "w.pt", b"\x00" * 100)},
        "is not a weights file",
    ),
    Bad(
        "weights-evil",
        "model",
        lambda d: {"weights": _torch_file(d, "w.pt", Payload(d / "pwned"))},
        "not a weights file HookScope can read safely",
        marker="pwned",
    ),
    Bad(
        "state-dict-as-model",
        "model",
        lambda d: {"spec": _torch_file(d, "sd.pt", torchvision.models.resnet18().state_dict())},
        r"holds weights \(a state_dict\), not a model",
    ),
    Bad("unknown-device", "model", lambda d: {"device": "tpu"}, "Unknown device 'tpu'"),
    Bad(
        "factory-sys-exit",
        "model",
        lambda d: {"spec": _factory(d, "import sys\nsys.exit(3)\n") + ":build"},
        r"Running net\.py called sys\.exit\(3\) instead of returning a model",
    ),
    Bad(
        "hf-remote-code",
        "model",
        lambda d: {"spec": _hf_remote_code(d)},
        r"asks to run its own Python code \(configuration_evil\.EvilConfig.*never runs",
        marker="pwned",
    ),
    # -- images --
    Bad("missing-image", "image", lambda d: {"image": str(d / "gone.png")}, "does not exist"),
    Bad(
        "text-as-image",
        "image",
        lambda d: {"image": _write(d, "notes.png", "hello")},
        "notes.png is not an image",
    ),
    Bad(
        "truncated-image",
        "image",
        lambda d: {"image": _write(d, "cut.jpg", _jpeg_bytes()[:600])},
        "cut.jpg could not be decoded",
    ),
    Bad("zero-size-image", "image", lambda d: {"image": _png_zero(d)}, "zero.png is not an image"),
    Bad(
        "huge-image",
        "image",
        lambda d: {"image": _image(d, "bomb.png", Image.new("1", (20000, 20000)))},
        "too large to open safely|more than HookScope opens",
    ),
    Bad("folder-as-image", "image", lambda d: {"image": str(d)}, "does not exist"),
    Bad(
        "one-pixel-image",
        "image",
        lambda d: {"image": _image(d, "one.png", Image.new("RGB", (1, 1), (90, 30, 200)))},
        None,
    ),
    Bad(
        "cmyk-image",
        "image",
        lambda d: {"image": _image(d, "c.jpg", Image.new("CMYK", (40, 40), (0, 80, 160, 10)))},
        None,
    ),
    Bad(
        "16-bit-image",
        "image",
        lambda d: {
            "image": _image(d, "g16.png", Image.fromarray(np.full((40, 40), 40000, np.uint16)))
        },
        None,
    ),
    Bad("animated-image", "image", lambda d: {"image": _animated(d)}, None),
    # -- runs --
    Bad("unknown-layer", "run", lambda d: {"layers": ["layer9"]}, "no layer named 'layer9'"),
    Bad(
        "layer-never-runs",
        "run",
        lambda d: {"spec": _factory(d, UNUSED) + ":build", "layers": ["spare"]},
        "'spare' did not run in the forward pass",
    ),
    Bad("target-out-of-range", "run", lambda d: {"target": "1000"}, "out of range"),
    Bad("target-negative", "run", lambda d: {"target": "-3"}, "out of range"),
    Bad(
        "unknown-class-name", "run", lambda d: {"target": "unicorn"}, "Unknown class name 'unicorn'"
    ),
    Bad("cam-on-vector-layer", "run", lambda d: {"layers": ["fc"], "cam": True}, "'fc'"),
    Bad(
        "forward-raises",
        "run",
        lambda d: {"spec": _factory(d, FORWARDS) + ":raises", "layers": ["conv"]},
        "forward pass failed with ValueError: the model is broken on purpose",
    ),
    Bad(
        "forward-nan",
        "run",
        lambda d: {"spec": _factory(d, FORWARDS) + ":nan", "layers": ["conv"]},
        "NaN or Inf",
    ),
    Bad(
        "forward-inf",
        "run",
        lambda d: {"spec": _factory(d, FORWARDS) + ":inf", "layers": ["conv"]},
        "NaN or Inf",
    ),
    Bad(
        "forward-non-tensor",
        "run",
        lambda d: {"spec": _factory(d, FORWARDS) + ":text", "layers": ["conv"]},
        "returned str, not a tensor",
    ),
    Bad(
        "wrong-channel-count",
        "run",
        lambda d: {"spec": _factory(d, FORWARDS) + ":grey", "layers": ["0"]},
        r"rejected an input of shape \(1, 3, 32, 32\)",
    ),
]


def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _hf_remote_code(folder: Path) -> str:
    """A save_pretrained-like folder whose config asks transformers to import its own code."""
    hf = folder / "hf-evil"
    hf.mkdir()
    config = {
        "model_type": "evil_net",
        "architectures": ["EvilModel"],
        "auto_map": {
            "AutoConfig": "configuration_evil.EvilConfig",
            "AutoModel": "modeling_evil.EvilModel",
        },
    }
    (hf / "config.json").write_text(json.dumps(config))
    code = f"import pathlib\npathlib.Path({str(folder / 'pwned')!r}).write_text('ran')\n"
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (hf / name).write_text(code)
    return f"hf:{hf}"


# -- sessions: a file the user only opened (issue 22) --------------------------------------------
MARKER_FACTORY = """
import pathlib
pathlib.Path(__file__).with_name("pwned").write_text("ran")

def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
"""


def session_file(folder: Path, **fields) -> dict:
    """A session file with these fields over a good demo session; returns ``{"session": path}``."""
    data = {"model": "demo", "layers": ["features.block3"], "version": 1, **fields}
    path = folder / "session.json"
    path.write_text(json.dumps(data))  # NaN is written as NaN, as a hostile file may
    return {"session": str(path)}


SESSION_CASES: list[Bad] = [
    Bad(
        "session-pickle-trusts-itself",
        "session",
        lambda d: session_file(
            d,
            model=_torch_file(d, "model.pt", Payload(d / "pwned")),
            gui={"trust_pickle": True},
        ),
        "model.pt is a pickled Python object .* refuses it",
        marker="pwned",
    ),
    Bad(
        "session-factory",
        "session",
        lambda d: session_file(d, model=_factory(d, MARKER_FACTORY) + ":build"),
        r"built by running .*net\.py, which was not allowed",
        marker="pwned",
    ),
    Bad(
        "session-input-spec-string",
        "session",
        lambda d: session_file(d, input_spec="224"),
        "broken 'input_spec' entry",
    ),
    Bad(
        "session-huge-input",
        "session",
        lambda d: session_file(
            d, input_spec={"size": [100000, 100000], "mean": [0.5] * 3, "std": [0.5] * 3}
        ),
        r"100000×100000 is larger than the 2048×2048 pixels",
    ),
    Bad(
        "session-occlude-without-box",
        "session",
        lambda d: session_file(d, image=good_image(d), image_edits=[{"op": "occlude"}]),
        r"broken 'image_edits\.0\.box' entry",
    ),
    Bad(
        "session-occlude-reversed-box",
        "session",
        lambda d: session_file(
            d, image=good_image(d), image_edits=[{"op": "occlude", "box": [10, 10, 2, 1e300]}]
        ),
        r"broken 'image_edits\.0\.box' entry",
    ),
    Bad(
        "session-layout-not-base64",
        "session",
        lambda d: session_file(d, gui={"layout": "not base64 at all!"}),
        r"broken 'gui\.layout' entry \(the dock layout is not base64 text\)",
    ),
    Bad(
        "session-unknown-cam-method",
        "session",
        lambda d: session_file(d, cam_method="gradcam+++"),
        r"unknown CAM method 'gradcam\+\+\+'",
    ),
    Bad(
        "session-alpha-nan",
        "session",
        lambda d: session_file(d, cam_params={"alpha": float("nan")}),
        r"broken 'cam_params\.alpha' entry \(nan",
    ),
    Bad(
        "session-version-string",
        "session",
        lambda d: session_file(d, version="1"),
        r"broken 'version' entry \('1'",
    ),
    Bad(
        "session-target-true",
        "session",
        lambda d: session_file(d, target=True),
        r"broken 'target' entry \(True is not a class index",
    ),
]


def prepare(case: Bad, folder: Path, monkeypatch) -> dict:
    """Build the case's files, patch the network if needed, return the full inputs."""
    fields = {**DEFAULTS, "image": good_image(folder)}
    fields.update(case.make(folder))
    if case.offline:
        monkeypatch.setenv("TORCH_HOME", str(folder / "torch-home"))

        def offline(*args, **kwargs):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    return fields


def cli_args(fields: dict, out: Path) -> list[str]:
    """The command a user would type for these inputs."""
    if fields["command"]:
        return [
            fields["command"],
            "--model",
            fields["spec"],
            "--device",
            fields["device"],
            *[
                str(f).replace("{out}", str(out)).replace("{image}", fields["image"])
                for f in fields["flags"]
            ],
        ]
    args = [
        "cam" if fields["cam"] else "probe",
        "--model",
        fields["spec"],
        "--image",
        fields["image"],
        "--layers",
        ",".join(fields["layers"]),
        "--device",
        fields["device"],
    ]
    if fields["weights"]:
        args += ["--weights", fields["weights"]]
    if fields["trust_pickle"]:
        args.append("--trust-pickle")
    if fields["target"] is not None:
        args += ["--target", fields["target"]]
    if fields["cam"]:
        args += ["--method", "gradcam", "--out", str(out / "cam.npz")]
    return args + list(fields["flags"])


# -- issue 22, section 3: inputs that ended in a traceback or a silent wrong result -----------
OUTPUTS = """
class Out(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        if self.mode == "empty":
            return y[:, :0]
        return torch.complex(y, y)

def empty():
    return Out("empty")

def complex():
    return Out("complex")

INPUT_SPEC = {"size": 32}
"""


def _spec_factory(folder: Path, spec: str) -> str:
    body = "def build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(1))\n"
    return _factory(folder, body + f"INPUT_SPEC = {spec}\n") + ":build"


def _hf_folder(folder: Path, preprocessor: dict) -> str:
    """A tiny save_pretrained ResNet (random weights, no network) with this preprocessor."""
    import contextlib
    import io

    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
    hf = folder / "hf-tiny"
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar is not the CLI's output
        ResNetForImageClassification(config).save_pretrained(hf)
    (hf / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return f"hf:{hf}"


def _float_tiff(folder: Path) -> str:
    arr = np.random.default_rng(3).random((48, 48)).astype(np.float32)
    arr[5, 7] = np.nan
    return _image(folder, "nan.tif", Image.fromarray(arr, "F"))


def _scripted(folder: Path) -> str:
    path = folder / "scripted.pt"
    torch.jit.script(torchvision.models.resnet18().eval()).save(str(path))
    return str(path)


def _core_attribute(method: str, **options):
    def run(lm, x, fields):
        from hookscope.core.methods.attribution import attribute

        return attribute(method, lm.model, x, None, **options)

    return run


def _core_probe(k: int = 5, edits=()):
    def run(lm, x, fields):
        from hookscope.core.engine.probe import run_probe
        from hookscope.core.experiments.interventions import edit_from_dict

        eds = [edit_from_dict(lm.model, d) for d in edits]
        return run_probe(lm.model, x, fields["layers"], None, k=k, edits=eds)

    return run


def _core_scan(clusters: str):
    def run(lm, x, fields):
        from hookscope.core.jobs.scan import scan_job
        from hookscope.core.reporting import quiet

        folder = Path(fields["image"]).parent
        return scan_job(quiet(), lm, str(folder), "layer4", clusters=clusters)

    return run


def _app_edits(edits):
    def run(state):
        state.set_edits(list(edits))

    return run


ABLATE_LAST = [{"kind": "act", "layer": "layer4", "op": "zero", "channels": [-1]}]
OCCLUDE = ["--image", "{image}", "--method", "occlusion", "--out", "{out}/o.npz"]
SMOOTH = ["--image", "{image}", "--method", "smoothgrad", "--samples", "2", "--out", "{out}/s.npz"]

SECTION3: list[Bad] = [
    Bad(
        "elongated-image",
        "image",
        lambda d: {"image": _image(d, "strip.png", Image.new("RGB", (400000, 1), (9, 9, 9)))},
        r"400000×1 pixels, more elongated than HookScope opens \(100:1\)",
    ),
    Bad(
        "float-tiff-one-nan",
        "image",
        lambda d: {"image": _float_tiff(d)},
        None,
        note=r"1 of the image's 2304 pixels are NaN or infinite; they are shown black",
    ),
    Bad(
        "cam-on-torchscript",
        "run",
        lambda d: {"spec": _scripted(d), "layers": [], "cam": True},
        r"TorchScript does not run Python hooks",
    ),
    Bad(
        "output-empty",
        "run",
        lambda d: {"spec": _factory(d, OUTPUTS) + ":empty", "layers": ["conv"]},
        r"outputs an empty tensor of shape \(1, 0\)",
    ),
    Bad(
        "output-complex",
        "run",
        lambda d: {"spec": _factory(d, OUTPUTS) + ":complex", "layers": ["conv"]},
        r"outputs complex numbers \(complex64, shape \(1, 4\)\)",
    ),
    Bad(
        "input-spec-unknown-field",
        "model",
        lambda d: {"spec": _spec_factory(d, '{"sise": 32}')},
        r"INPUT_SPEC of net\.py is not usable: an input spec has no field 'sise'",
    ),
    Bad(
        "input-spec-size-zero",
        "model",
        lambda d: {"spec": _spec_factory(d, '{"size": 0}')},
        r"INPUT_SPEC of net\.py is not usable: an input size must be one or two whole numbers",
    ),
    Bad(
        "input-spec-size-text",
        "model",
        lambda d: {"spec": _spec_factory(d, '{"size": "big", "channels": 3}')},
        r"not usable: an input size must be .* not 'big'",
    ),
    Bad(
        "hf-preprocessor-size-zero",
        "model",
        lambda d: {"spec": _hf_folder(d, {"size": 0})},
        r"preprocessor_config\.json \(or its config\) is not usable: an input size must be",
    ),
    Bad(
        "target-superscript-digit",
        "run",
        lambda d: {"target": "²"},
        r"Unknown class name '²'",
    ),
    Bad(
        "topk-negative",
        "run",
        lambda d: {"flags": ["--topk", "-3"], "core": _core_probe(k=-3), "app": None},
        r"at least 1, not '?-3",
    ),
    Bad(
        "ablate-minus-one",
        "run",
        lambda d: {
            "flags": ["--ablate", "layer4:-1"],
            "core": _core_probe(edits=ABLATE_LAST),
            "app": _app_edits(ABLATE_LAST),
        },
        r"numbered from 0",
    ),
    Bad(
        "occlusion-fill-nan",
        "run",
        lambda d: {
            "command": "attribute",
            "flags": [*OCCLUDE, "--fill", "nan"],
            "core": _core_attribute("occlusion", fill=float("nan")),
            "app": None,
        },
        r"fill option of occlusion must be a finite number, not nan",
    ),
    Bad(
        "smoothgrad-noise-nan",
        "run",
        lambda d: {
            "command": "attribute",
            "flags": [*SMOOTH, "--noise", "nan"],
            "core": _core_attribute("smoothgrad", samples=2, noise=float("nan")),
            "app": None,
        },
        r"noise option of smoothgrad must be a finite number, not nan",
    ),
    Bad(
        "importance-top-zero",
        "run",
        lambda d: {
            "command": "importance",
            "flags": ["--image", "{image}", "--layer", "layer4", "--top", "0"],
            "core": None,  # only the command line lists a top N
            "app": None,
        },
        r"argument --top: must be a whole number of at least 1, not '0'",
    ),
    Bad(
        "clusters-superscript-digit",
        "run",
        lambda d: {
            "command": "scan",
            "flags": [
                "--images",
                str(d),
                "--layer",
                "layer4",
                "--out",
                str(d / "scan"),
                "--clusters",
                "²",
            ],
            "core": _core_scan("²"),
            "app": None,
        },
        r"--clusters must be auto or a (whole )?number.*not ²",
    ),
]
CASES += SECTION3
