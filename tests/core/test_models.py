"""load_model: every spec form and every failure sentence."""

import os
import pickle
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.models import load_model, pick_device


def test_torchvision_random_init_has_imagenet_names_and_spec():
    lm = load_model("torchvision:resnet18")
    assert not lm.model.training
    assert len(lm.class_names) == 1000 and lm.class_names[0] == "tench"
    assert lm.input_spec.size == (224, 224) and lm.input_spec.resize == 256
    assert lm.input_spec.mean == pytest.approx((0.485, 0.456, 0.406))


def test_torchvision_vit_spec_and_names():
    lm = load_model("torchvision:vit_b_16")
    assert lm.input_spec.size == (224, 224) and len(lm.class_names) == 1000


def test_offline_pretrained_download_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(
        HookScopeError, match=r"Could not download the pretrained weights .*--weights"
    ):
        load_model("torchvision:resnet18:DEFAULT")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("torchvision:resnt18", "no model named 'resnt18'; try one of resnet18"),
        ("torchvision:resnet18:NOPE", "Unknown weights 'NOPE' for resnet18"),
        ("torchvision:", "Bad torchvision spec"),
        ("", "No model given"),
        ("missing/model.pt", "does not exist"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(HookScopeError, match=message):
        load_model(spec)


FACTORY = """
import torch
from torch import nn
CLASS_NAMES = ["zero", "one"]
INPUT_SPEC = {"size": 28, "channels": 1}

def build():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(2))

def boom():
    raise RuntimeError("cannot build today")

def not_a_module():
    return 42
"""


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(FACTORY)
    return path


def test_python_factory(factory_file):
    lm = load_model(f"{factory_file}:build")
    assert lm.class_names == ["zero", "one"]
    assert lm.input_spec.size == (28, 28) and lm.input_spec.channels == 1
    assert lm.input_spec.mean == (0.5,)
    assert isinstance(lm.model[0], nn.Conv2d)


@pytest.mark.parametrize(
    "factory, message",
    [
        ("nope", "net.py has no function named 'nope'"),
        ("boom", r"The factory boom\(\) in net.py raised RuntimeError: cannot build today"),
        ("not_a_module", r"returned int, not a torch.nn.Module"),
    ],
)
def test_python_factory_failures(factory_file, factory, message):
    with pytest.raises(HookScopeError, match=message):
        load_model(f"{factory_file}:{factory}")


def test_a_factory_imports_its_sibling_modules_as_a_script_would(tmp_path, monkeypatch):
    """``from arch import Net`` beside the factory loads from any working folder."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "arch.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
    )
    (project / "factory.py").write_text(
        "from arch import Net\n\ndef build():\n    import arch\n    return arch.Net()\n"
    )
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    lm = load_model(f"{project / 'factory.py'}:build")
    assert type(lm.model).__name__ == "Net" and lm.model[0].out_channels == 5
    assert sys.path == before  # the folder was first on the path for the import only


def test_python_factory_needs_a_name_and_a_file(factory_file, tmp_path):
    with pytest.raises(HookScopeError, match="Name the factory function"):
        load_model(str(factory_file))
    with pytest.raises(HookScopeError, match="does not exist"):
        load_model(f"{tmp_path / 'gone.py'}:build")


def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_torchscript_archive(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.script(small()).save(str(path))
    lm = load_model(str(path))
    assert lm.scripted
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(lm.model(x), small()(x))


def test_pickled_module_refused_unless_trusted(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(small(), path)
    with pytest.raises(HookScopeError, match="unpickling runs code stored in the file"):
        load_model(str(path))
    lm = load_model(str(path), trust_pickle=True)
    assert isinstance(lm.model, nn.Sequential) and not lm.model.training


class Payload:
    """Unpickling this would create a file: the loader must never run it."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dumps"])
def test_malicious_pickle_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(Payload(marker), path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(HookScopeError, match="refuses it"):
        load_model(str(path))
    with pytest.raises(HookScopeError):
        load_model("torchvision:resnet18", weights=str(path))
    assert not marker.exists()


def test_state_dict_weights(tmp_path):
    torch.manual_seed(5)
    source = torchvision.models.resnet18()
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    lm = load_model("torchvision:resnet18", weights=str(path))
    assert torch.equal(lm.model.fc.weight, source.fc.weight)
    assert lm.weights == str(path)


def test_state_dict_from_dataparallel_and_checkpoint_dict(tmp_path):
    source = small()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    spec_file = tmp_path / "s.py"
    spec_file.write_text(
        "from torch import nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),"
        " nn.Flatten())\n"
    )
    lm = load_model(f"{spec_file}:build", weights=str(path))
    assert torch.equal(lm.model[0].weight, source[0].weight)


def test_state_dict_for_another_architecture_names_the_keys(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(HookScopeError, match=r"missing layer1\.2\.conv1\.weight"):
        load_model("torchvision:resnet34", weights=str(path))
    ten = tmp_path / "r18_10.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), ten)
    with pytest.raises(
        HookScopeError, match=r"shape clash fc\.weight \(10, 512\) vs \(1000, 512\)"
    ):
        load_model("torchvision:resnet18", weights=str(ten))


def test_state_dict_given_as_model_says_what_to_do(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small().state_dict(), path)
    with pytest.raises(HookScopeError, match="holds weights \\(a state_dict\\), not a model"):
        load_model(str(path))


@pytest.mark.parametrize(
    "content",
    [b"", np.random.default_rng(1).bytes(2000), "truncated"],
    ids=["empty", "random-bytes", "truncated"],
)
def test_unreadable_model_files(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content == "truncated":
        torch.save(small(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(HookScopeError, match="bad.pt (is empty|is not a model file)"):
        load_model(str(path))


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(HookScopeError, match="Unknown device 'tpu'"):
        pick_device("tpu")


def test_demo_specs():
    lm = load_model("demo")
    assert lm.class_names[0] == "airplane" and lm.input_spec.size == (96, 96)
    assert load_model("demo:clean").name == "demo (clean)"
    with pytest.raises(HookScopeError, match="Unknown demo 'dirty'"):
        load_model("demo:dirty")


def test_random_weights_are_the_same_model_every_time_and_leave_the_rng_alone():
    from hookscope.core.engine.guard import state_checksum

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("torchvision:resnet18").model
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is untouched
    b = load_model("torchvision:resnet18").model
    assert state_checksum(a) == state_checksum(b)
