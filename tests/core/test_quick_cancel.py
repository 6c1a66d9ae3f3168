"""Cancel stops a slow CAM inside a batch's forward, and progress counts channels from the start."""

from __future__ import annotations

import pytest
import torch

from hookscope.core.engine.hooks import hook_count
from hookscope.core.methods.cam import compute_cam
from hookscope.core.reporting import Cancelled, Reporter
from tests.core.conftest import image


class CancelMidForward(Reporter):
    """Asks to cancel at the 10th module of the first scoring forward."""

    def __init__(self):
        super().__init__(lambda d, t, m: self.seen.append((d, t)))
        self.seen, self.checks = [], 0

    def check(self) -> None:
        if self.seen and self.seen[-1][1]:  # the CAM's own work has started
            self.checks += 1
            if self.checks == 10:
                self.cancel()
        super().check()


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_cancel_lands_inside_the_first_batch(resnet, method):
    reporter = CancelMidForward()
    with pytest.raises(Cancelled):
        # One batch holds every channel: without checks per module the batch would finish.
        compute_cam(resnet, image(64), ["layer4"], method, batch_size=512, reporter=reporter)
    assert reporter.seen == [(0, 512)]  # real units at once; no batch completed
    assert reporter.checks == 10
    assert hook_count(resnet) == 0
    # The model still works as before (no hook left behind, nothing half-changed).
    with torch.no_grad():
        assert resnet(image(64)).shape == (1, 1000)
