"""WatchCallback records a Lightning fit like hookscope.watch records a hand-written loop."""

import pytest
import torch
from torch import nn

from hookscope.core.engine.hooks import hook_count
from hookscope.core.training.store import read_run

L = pytest.importorskip("lightning")


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_lightning_fit_is_recorded_and_left_without_hooks(tmp_path):
    from hookscope.core.training.lightning import WatchCallback

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(24, 4), torch.randint(0, 2, (24,)))
    model = Tiny()
    trainer = L.Trainer(
        max_steps=6,
        callbacks=[WatchCallback(out=str(tmp_path), every=2)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
    run = read_run(tmp_path)
    assert run.info["status"] == "finished"
    assert sorted({int(s) for s in run.rows("module")["step"]}) == [0, 2, 4]
    assert len(run.rows("loss")["loss"]) == 6
    assert set(run.rows("param")["param"]) == {
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
    }
    assert hook_count(model) == 0
