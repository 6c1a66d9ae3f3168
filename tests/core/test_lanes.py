"""Long jobs work in batches, so the app's clicks run in between without seeing their state."""

from __future__ import annotations

import pytest

from hookscope.core.demo import sample_path
from hookscope.core.engine.guard import state_checksum
from hookscope.core.engine.hooks import hook_count
from hookscope.core.jobs.evaluate import evaluate_job
from hookscope.core.jobs.experiments import importance_job, sanity_job
from hookscope.core.jobs.scan import scan_job
from hookscope.core.loading.images import load_image
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import Reporter

LAYER = "features.block3"


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def image():
    return load_image(sample_path("airplane_sky.png"))


def test_long_jobs_declare_their_batches():
    for job in (scan_job, evaluate_job, importance_job, sanity_job):
        assert getattr(job, "per_batch", False), job.__name__


def test_sanity_randomises_a_copy_so_the_real_model_never_changes(demo, image):
    before = state_checksum(demo.model)
    seen = []
    report = sanity_job(
        Reporter(lambda *_: seen.append(state_checksum(demo.model))),
        demo,
        image,
        ("gradcam",),
        cam_layer=LAYER,
    )
    steps = len(report.result.steps)
    assert steps >= 3 and len(seen) == steps + 2  # a report per randomised layer
    assert set(seen) == {before} and report.restored
    # The numbers are those of randomising the model itself.
    assert report.result.correlations["gradcam"][0] < 1.0


def test_importance_keeps_its_hook_inside_a_batch(demo, image):
    between = []
    result = importance_job(
        Reporter(lambda *_: between.append(hook_count(demo.model))),
        demo,
        image,
        LAYER,
        batch_size=8,
    )
    assert len(between) == 1 + -(-len(result.drops) // 8)  # start + one per batch
    assert set(between) == {0}  # between two batches no hook is left on the model
