"""The bad-input catalogue: one table, run through the core API, the CLI and the GUI.

Each case builds its files in a temporary folder and says which sentence the user must see.
A case whose ``message`` is None must simply work (1×1, CMYK, 16-bit and animated images).
"""

from __future__ import annotations

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
    """

    id: str
    kind: str
    make: Callable[[Path], dict]
    message: str | None
    offline: bool = False
    marker: str | None = None
    extra: dict = field(default_factory=dict)


DEFAULTS = {
    "spec": "torchvision:resnet18",
    "weights": None,
    "trust_pickle": False,
    "image": None,  # filled with a good image by `prepare`
    "layers": ["layer4"],
    "target": None,
    "cam": False,
    "device": "cpu",
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
    return args
