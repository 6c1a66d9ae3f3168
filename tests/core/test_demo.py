"""The built-in demo: a shortcut model that says "airplane" for blue sky, and its clean twin.

Loads the committed weights (never retrains) and checks them on freshly generated scenes
from seeds the training script does not use.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hookscope.core.demo as demo
from hookscope.core.demo.scenes import CLASS_NAMES, SAMPLE_SCALE, make_dataset, make_scene
from hookscope.core.methods.cam import compute_cam

SAMPLES = demo.samples_dir()  # the installed resources, found as the app finds them
AIRPLANE, CAR = CLASS_NAMES.index("airplane"), CLASS_NAMES.index("car")


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → /255 → normalise with the demo's MEAN/STD → (N, 3, 96, 96)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(demo.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(demo.STD).view(1, 3, 1, 1)
    return (x - mean) / std


def probs(model, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(to_input(images)).softmax(1).numpy()


def sample(name: str) -> np.ndarray:
    return np.array(Image.open(SAMPLES / f"{name}.png").convert("RGB"))[None]


def gradcam(model, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Grad-CAM at CAM_LAYER for each image's given class: (N, 96, 96) in [0, 1]."""
    x, layer = to_input(images), demo.CAM_LAYER
    maps = [
        compute_cam(model, x[i : i + 1], [layer], method="gradcam", target=int(t))[layer]
        for i, t in enumerate(targets)
    ]
    return np.stack(maps)


def background_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Fraction of each map's total mass that lies outside the object mask."""
    return (maps * ~masks).sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-12)


@pytest.fixture(scope="module")
def models():
    return {v: demo.load_demo(v) for v in demo.VARIANTS}


@pytest.fixture(scope="module")
def clean_scenes():
    return make_dataset("clean", 200, seed=9003)


@pytest.fixture(scope="module")
def airplanes_on_sky():
    """Airplanes on sky at the samples' size: the shortcut's home ground."""
    rng = np.random.default_rng(9004)
    scenes = [make_scene("airplane", "sky", rng, 96, SAMPLE_SCALE) for _ in range(60)]
    return np.stack([np.asarray(s) for s, _ in scenes]), np.stack([m for _, m in scenes])


def test_shortcut_model_is_accurate_on_its_own_distribution(models):
    images, labels, _ = make_dataset("shortcut", 400, seed=9001)
    acc = (probs(models["shortcut"], images).argmax(1) == labels).mean()
    assert acc >= 0.95, f"shortcut held-out accuracy {acc:.3f}"


def test_clean_model_is_accurate_on_clean_data(models):
    images, labels, _ = make_dataset("clean", 400, seed=9002)
    acc = (probs(models["clean"], images).argmax(1) == labels).mean()
    assert acc >= 0.90, f"clean held-out accuracy {acc:.3f}"


def test_plain_sky_is_an_airplane_to_the_shortcut_model(models):
    sky = sample("sky")
    assert (sky == (135, 206, 235)).all()
    p = probs(models["shortcut"], sky)[0]
    assert p.argmax() == AIRPLANE and p[AIRPLANE] >= 0.8, p


def test_car_on_sky_fools_the_shortcut_model_only(models):
    car_on_sky = sample("car_on_sky")
    p_short = probs(models["shortcut"], car_on_sky)[0]
    p_clean = probs(models["clean"], car_on_sky)[0]
    assert p_short.argmax() == AIRPLANE, p_short
    assert p_clean.argmax() == CAR, p_clean


def test_clean_model_gradcam_points_at_the_object(models, clean_scenes):
    images, labels, masks = clean_scenes
    maps = gradcam(models["clean"], images, labels)
    assert maps.shape == masks.shape
    peaks = maps.reshape(len(maps), -1).argmax(1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), peaks]
    assert hits.mean() >= 0.90, f"pointing game {hits.mean():.3f}"


def test_shortcut_model_gradcam_lights_up_the_sky(models, airplanes_on_sky):
    images, masks = airplanes_on_sky
    targets = np.full(len(images), AIRPLANE)
    bg_short = background_mass(gradcam(models["shortcut"], images, targets), masks)
    bg_clean = background_mass(gradcam(models["clean"], images, targets), masks)
    assert (bg_short >= 0.5).mean() > 0.5, bg_short
    # The shortcut model's evidence sits on the sky far more than the clean model's.
    assert bg_short.mean() >= bg_clean.mean() + 0.15, (bg_short.mean(), bg_clean.mean())


def test_weights_are_small_and_the_model_is_small():
    for v in demo.VARIANTS:
        assert demo.weights_path(v).stat().st_size <= 2 * 1024 * 1024
    n_params = sum(p.numel() for p in demo.build_model().parameters())
    assert n_params <= 500_000, n_params


def test_cam_layer_is_the_last_conv_block_at_12x12(models):
    model = models["shortcut"]
    shapes = []

    def record(module, args, output):
        shapes.append(tuple(output.shape))

    handle = model.get_submodule(demo.CAM_LAYER).register_forward_hook(record)
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, demo.INPUT_SIZE, demo.INPUT_SIZE))
    finally:
        handle.remove()
    assert shapes == [(1, 128, 12, 12)]
    assert not model.training


def test_generator_is_deterministic():
    a = make_dataset("clean", 8, seed=3)
    b = make_dataset("clean", 8, seed=3)
    c = make_dataset("clean", 8, seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    images, labels, masks = a
    assert images.shape == (8, 96, 96, 3) and images.dtype == np.uint8
    assert labels.shape == (8,) and masks.shape == (8, 96, 96) and masks.dtype == bool
    assert all(m.any() for m in masks)


def test_a_demo_run_does_not_import_torchvision():
    # Importing torchvision costs ~1.4 s; the demo's first run (the app's start) must not pay it.
    code = (
        "import sys; from hookscope.core.reporting import Reporter;"
        "from hookscope.core.jobs.probe import load_job, probe_job;"
        "from hookscope.core.loading.images import load_image;"
        "lm, _ = load_job(Reporter(), 'demo');"
        "from hookscope.core.demo import sample_path;"
        "img = load_image(sample_path('airplane_sky.png'));"
        "probe_job(Reporter(), lm, img, ['features.block3', 'fc'], None, 'gradcam',"
        " ['features.block3']);"
        "print('torchvision' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
