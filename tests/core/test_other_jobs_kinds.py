"""Other jobs and model kinds: class-only experiments refuse in one sentence, attributions
explain box:i, C@mask.png and similar:IMAGE like the probe does.

Channel importance and the sanity check rank by a class probability; a segmentation output
flattened into K*H*W "classes" gave a made-up ranking with no message (issue 13).
"""

from __future__ import annotations

import pytest
import torch

from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.importance import channel_importance
from hookscope.core.experiments.sanity import cascading_randomization
from tests.gui import kind_models


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (kind_models.build_seg, "dense (1, 3, 32, 32)"),
        (kind_models.build_det, "detections (1, 3)"),
        (kind_models.build_emb, "embedding (1, 6)"),
    ],
)
def test_importance_and_sanity_need_class_scores(build, kind):
    model, x = build(), torch.rand(1, 3, 32, 32)
    layer = "backbone" if isinstance(model, kind_models.Detector) else "features"
    with pytest.raises(HookScopeError) as err:
        channel_importance(model, x, layer)
    assert str(err.value) == (
        "Channel importance ranks channels by the drop of a class probability, so it needs "
        f"class scores; this model's output is {kind}."
    )
    with pytest.raises(HookScopeError) as err:
        cascading_randomization(model, x, methods=("gradcam",), cam_layer=layer)
    assert str(err.value) == (
        "The sanity check explains one class, so it needs class scores; this model's output "
        f"is {kind}."
    )


def test_attribution_job_takes_box_region_and_similarity_targets(tmp_path):
    """Saliency (|d score / d input|) for box:i, C@mask.png and similar:IMAGE, by hand."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    from hookscope.core.jobs.attribution import attribution_job
    from hookscope.core.loading.images import to_tensor
    from hookscope.core.loading.models import load_model
    from hookscope.core.reporting import quiet

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    ref = tmp_path / "ref.png"
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(ref)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 8:30] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    models = f"{kind_models.__file__}"

    def score_box(model, x):
        return model(x)[0]["scores"][1]

    def score_region(model, x):
        return (model(x)["out"][0, 2] * torch.from_numpy(mask > 0).float()).sum()

    def score_similar(model, x):
        emb = model(x)
        r = model(to_tensor(Image.open(ref).convert("RGB"), lm.input_spec)).detach()
        return F.cosine_similarity(emb, r)[0]

    for build, target, score, label in (
        ("build_det", "box:1", score_box, "detection 1 (dog)"),
        ("build_seg", f"2@{tmp_path / 'm.png'}", score_region, "class 2 (dark) over the region"),
        ("build_emb", f"similar:{ref}", score_similar, "similarity to ref.png"),
    ):
        lm = load_model(f"{models}:{build}")
        result = attribution_job(quiet(), lm, img, "saliency", None, target)
        x = to_tensor(img, lm.input_spec).requires_grad_(True)
        (grad,) = torch.autograd.grad(score(lm.model, x), x)
        np.testing.assert_allclose(result.attribution, grad[0].abs().numpy(), rtol=1e-4, atol=1e-7)
        assert result.target_label.startswith(label) and result.target_prob is None


def test_hook_code_for_each_kind_matches_the_probe(tmp_path):
    """The generated script resolves box:i / C@mask.png / similar:IMAGE / a dense class as the
    probe does: the same input gradient."""
    import numpy as np
    from PIL import Image

    from hookscope.core.engine.probe import run_probe
    from hookscope.core.io.hookcode import hook_code
    from hookscope.core.loading.images import load_image, to_tensor
    from hookscope.core.loading.models import load_model

    rng = np.random.default_rng(1)
    photo, ref = tmp_path / "in.png", tmp_path / "ref.png"
    for p in (photo, ref):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 8:30] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    for build, kind, target, layer in (
        ("build_det", "detections", "box:1", "backbone"),
        ("build_seg", "dense", f"2@{tmp_path / 'm.png'}", "features"),
        ("build_seg", "dense", 1, "features"),
        ("build_emb", "embedding", f"similar:{ref}", "features"),
    ):
        spec = f"{kind_models.__file__}:{build}"
        code = hook_code(spec, None, str(photo), [layer], target, kind=kind)
        namespace: dict = {}
        exec(compile(code, "<hook>", "exec"), namespace)
        lm = load_model(spec)
        x = to_tensor(load_image(photo), lm.input_spec)
        probe = run_probe(
            lm.model, x, [layer], target, class_names=lm.class_names, input_spec=lm.input_spec
        )
        np.testing.assert_allclose(
            namespace["input_grad"].numpy(), probe.input_grad.numpy(), rtol=1e-5, atol=1e-8
        )
        np.testing.assert_allclose(
            namespace["gradients"][layer].numpy(),
            probe.records[layer][0].grads[""].numpy(),
            rtol=1e-5,
            atol=1e-8,
        )
