"""Process settings: torch thread count per job, picked from the model's size."""

import torch

from hookscope.core.engine.runtime import SMALL_MACS, threads_for, torch_threads


def test_small_models_run_on_one_thread_big_ones_as_torch_likes():
    assert threads_for(64_000_000) == 1  # the demo
    assert threads_for(1_814_073_344) is None  # resnet18
    assert threads_for(SMALL_MACS) is None
    assert threads_for(0) is None  # unknown (the dry run failed): leave torch alone


def test_torch_threads_sets_and_restores_also_after_an_error():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    try:
        with torch_threads(1):
            raise ValueError
    except ValueError:
        pass
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
