"""Long sessions, cancel at any point, big models, and the model-mutation guard."""

import gc

import pytest
import torch
import torchvision
from PIL import Image

from hookscope.core.engine.guard import fingerprint
from hookscope.core.engine.hooks import hook_count
from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.probe import probe_job
from hookscope.core.loading.models import load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import Cancelled, Reporter


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_two_hundred_probes_keep_memory_flat_and_leave_no_hooks():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 64, 64)
    layers = ["layer1.0.relu", "layer2", "layer3.1.conv2", "layer4"]
    for _ in range(10):  # warm up allocator caches
        run_probe(model, x, layers)
    gc.collect()
    before = rss_mb()
    for _ in range(200):
        r = run_probe(model, x, layers)
    del r
    gc.collect()
    growth = rss_mb() - before
    print(f"RSS growth over 200 probes: {growth:.1f} MB")
    assert growth < 50
    assert hook_count(model) == 0


class CancelAt(Reporter):
    """A reporter that cancels itself at its n-th check, like a user pressing Esc mid-run."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.seen = n, 0

    def check(self):
        self.seen += 1
        if self.seen == self.n:
            self.cancel()
        super().check()


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    lm = load_model("torchvision:resnet18")
    lm.model.train()  # a mode that must come back, not be left in eval
    return lm


@pytest.mark.parametrize("n", [1, 2, 7, 30, 60, 75, 80, 90, 200])
def test_cancel_anywhere_leaves_the_model_as_it_was(r18, n):
    image = Image.new("RGB", (64, 64), (20, 120, 220))
    spec = InputSpec(size=(64, 64))
    before = fingerprint(r18.model)
    rep = CancelAt(n)
    try:
        probe_job(rep, r18, image, ["layer2", "layer4"], None, "scorecam", ["layer4"], spec=spec)
        finished = True
    except Cancelled:
        finished = False
    assert finished == (rep.seen < n)
    assert fingerprint(r18.model) == before
    assert all(p.grad is None for p in r18.model.parameters())


def test_a_cancelled_run_is_followed_by_a_good_one(r18):
    image = Image.new("RGB", (64, 64), (200, 20, 20))
    spec = InputSpec(size=(64, 64))
    with pytest.raises(Cancelled):
        probe_job(CancelAt(10), r18, image, ["layer4"], spec=spec)
    snap = probe_job(Reporter(), r18, image, ["layer4"], spec=spec)
    assert len(snap.topk) == 5


def test_errors_leave_the_model_unchanged(r18):
    before = fingerprint(r18.model)
    x = torch.randn(1, 3, 64, 64)
    for target in ("unicorn", 5000):
        with pytest.raises(HookScopeError):
            run_probe(r18.model, x, ["layer4"], target, class_names=r18.class_names)
    with pytest.raises(HookScopeError):
        run_probe(r18.model, torch.randn(1, 2, 64, 64), ["layer4"])
    run_probe(r18.model, x, ["layer1", "fc"])
    assert fingerprint(r18.model) == before


def ten_layers(model) -> list[str]:
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    step = len(leaves) / 10
    return [leaves[int(i * step)] for i in range(10)]


BIG = [
    ("resnet152", "layer4"),
    ("convnext_tiny", "features.7"),
    ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1"),
    ("efficientnet_b0", "features.8"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, cam_layer", BIG, ids=[b[0] for b in BIG])
def test_big_models(name, cam_layer):
    from hookscope.core.methods.cam import compute_cam

    torch.manual_seed(0)
    lm = load_model(f"torchvision:{name}")
    if name == "vit_b_16":  # torchvision zero-initialises the head: no gradient would flow
        torch.nn.init.normal_(lm.model.heads.head.weight, std=0.02)
    tree = build_tree(lm.model, lm.input_spec)
    assert tree.error is None and tree.root.total_params > 4_000_000
    before = fingerprint(lm.model)
    x = torch.randn(1, 3, *lm.input_spec.size)
    layers = ten_layers(lm.model)
    r = run_probe(lm.model, x, layers, class_names=lm.class_names)
    assert all(r.records[n] for n in layers) and r.input_grad.abs().sum() > 0
    cam = compute_cam(lm.model, x, [cam_layer], "gradcam", class_names=lm.class_names)[cam_layer]
    assert cam.shape == (224, 224) and cam.std() > 0.01
    assert fingerprint(lm.model) == before
