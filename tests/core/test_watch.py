"""hookscope.watch: the training is untouched, the folder survives a kill, ranks write shards."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hookscope
from hookscope.core.engine.hooks import hook_count
from hookscope.core.errors import HookScopeError
from hookscope.core.training.store import read_run

ROOT = Path(__file__).resolve().parents[2]


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(inplace=True),
        nn.Dropout(0.2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def train(out=None, steps=7, every=1, probe=None, fail_at=None) -> tuple[list[float], nn.Module]:
    torch.manual_seed(0)
    model = small_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = torch.randn(16, 3, 12, 12)
    labels = torch.randint(0, 4, (16,))
    losses = []

    def loop(w=None):
        for i in range(steps):
            batch = torch.randint(0, 16, (8,))  # the RNG is shared with dropout: must stay so
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(data[batch]), labels[batch])
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if w is not None:
                w.step(loss=loss.item())
            if i == fail_at:
                raise RuntimeError("the user's loop failed")

    if out is None:
        loop()
    else:
        with hookscope.watch(model, out=out, every=every, probe=probe, probe_every=2) as w:
            loop(w)
    return losses, model


@pytest.mark.parametrize("every", [1, 3])
def test_the_loss_curve_is_identical_bit_for_bit_with_and_without_watch(tmp_path, every):
    plain, m0 = train()
    probe = torch.randn(2, 3, 12, 12)
    watched, m1 = train(tmp_path / "run", every=every, probe=probe)
    assert watched == plain  # exact floats, not approx
    for a, b in zip(m0.state_dict().values(), m1.state_dict().values()):
        assert torch.equal(a, b)
    assert hook_count(m1) == 0 and m1.training
    run = read_run(tmp_path / "run")
    assert run.info["status"] == "finished" and not run.notes
    assert sorted({int(s) for s in run.rows("module")["step"]}) == list(range(0, 7, every))
    assert [p[0] for p in run.probes] == list(range(0, 7, every))[::2]
    assert run.probes[0][1].shape == (2, 12, 12)


def test_recorded_numbers_equal_a_direct_computation(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    before = model[0].weight.detach().clone()
    with hookscope.watch(model, out=tmp_path, every=1) as w:
        opt.zero_grad()
        hidden = model[1](model[0](x))
        loss = nn.functional.cross_entropy(model[2](hidden), y)
        loss.backward()
        grad = model[0].weight.grad.clone()
        opt.step()
        w.step(loss=loss)
    run = read_run(tmp_path)
    mod, par = run.rows("module"), run.rows("param")
    relu = mod["module"] == "1"
    h = hidden.detach()
    assert mod["act_zero"][relu][0] == pytest.approx(float((h == 0).float().mean()), abs=1e-7)
    assert mod["act_mean"][relu][0] == pytest.approx(float(h.mean()), rel=1e-5)
    w0 = par["param"] == "0.weight"
    assert par["grad_norm"][w0][0] == pytest.approx(float(grad.norm()), rel=1e-5)
    ratio = float((model[0].weight.detach() - before).norm() / model[0].weight.detach().norm())
    assert par["update_ratio"][w0][0] == pytest.approx(ratio, rel=1e-5)
    assert run.rows("loss")["loss"][0] == pytest.approx(loss.item())


def test_gradients_set_to_none_before_the_watch_step_are_still_recorded(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with hookscope.watch(model, out=tmp_path, every=1) as w:
        opt.zero_grad()
        model(torch.randn(6, 5)).sum().backward()
        grad = model[2].weight.grad.clone()
        opt.step()
        opt.zero_grad(set_to_none=True)  # a loop that clears before the watch's step
        w.step()
    par = read_run(tmp_path).rows("param")
    w2 = par["param"] == "2.weight"
    assert par["grad_norm"][w2][0] == pytest.approx(float(grad.norm()), rel=1e-6)


def test_hooks_are_removed_when_the_loop_raises(tmp_path):
    with pytest.raises(RuntimeError, match="the user's loop failed"):
        train(tmp_path, every=1, fail_at=2)
    run = read_run(tmp_path)
    assert run.info["status"] == "stopped by RuntimeError"
    assert sorted({int(s) for s in run.rows("module")["step"]}) == [0, 1, 2]


def test_hooks_are_removed_after_the_run(tmp_path):
    _, model = train(tmp_path, every=2)
    assert hook_count(model) == 0
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())


KILLED = """
import sys, time, torch
from torch import nn
import hookscope
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
with hookscope.watch(model, out=sys.argv[1], every=1, flush_every=1) as w:
    for i in range(100000):
        opt.zero_grad(); loss = model(torch.randn(4, 4)).sum(); loss.backward(); opt.step()
        w.step(loss=loss.item())
        if i == 5:
            print("ready", flush=True)
"""


@pytest.mark.slow
def test_a_killed_run_leaves_every_finished_chunk_readable(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (out / "stats" / "part-r0-999999.parquet").write_bytes(b"")  # a torn file from elsewhere
    run = read_run(out)
    assert run.info["status"] == "running"
    assert len(run.chunks) >= 6
    assert run.notes == ["Skipped part-r0-999999.parquet: it cannot be read (ArrowInvalid)."]
    steps = run.rows("loss")["step"]
    assert sorted(steps) == list(range(len(steps)))  # every finished record, none torn


def test_bad_settings_are_one_sentence(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(HookScopeError, match="every must be a whole number from 1"):
        hookscope.watch(model, out=tmp_path, every=0)
    with pytest.raises(HookScopeError, match="has no module named 'nope'"):
        hookscope.watch(model, out=tmp_path, layers=["nope"])
    with pytest.raises(HookScopeError, match="unknown options: colour"):
        hookscope.watch(model, out=tmp_path, colour="red")


RANK = """
import os, sys, torch, torch.distributed as dist
from torch import nn
import hookscope
rank, out = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method=f"file://{sys.argv[3]}", rank=rank, world_size=2)
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
model = nn.parallel.DistributedDataParallel(nn.Sequential(net, nn.Linear(4, 2)))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
torch.manual_seed(rank)
with hookscope.watch(model, out=out, every=2, probe=torch.randn(1, 3, 8, 8), probe_every=1) as w:
    for i in range(4):
        opt.zero_grad(); loss = model(torch.randn(4, 3, 8, 8)).pow(2).mean(); loss.backward()
        opt.step(); w.step(loss=loss.item())
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_ranks_write_their_own_shards_and_read_as_one_run(tmp_path):
    out, init = tmp_path / "run", tmp_path / "init"
    procs = [
        subprocess.Popen([sys.executable, "-c", RANK, str(r), str(out), str(init)], cwd=ROOT)
        for r in (0, 1)
    ]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    names = sorted(p.name for p in (out / "stats").glob("*.parquet"))
    assert names == ["part-r0-000000.parquet", "part-r1-000000.parquet"]
    run = read_run(out)
    assert run.info["world_size"] == 2
    assert sorted(set(run.columns["rank"].tolist())) == [0, 1]
    losses = run.rows("loss")
    assert len(losses["loss"]) == 8 and len(set(np.round(losses["loss"], 6))) == 8
    # DDP averages gradients: both ranks record the same parameter gradient norms.
    par = run.rows("param")
    r0 = par["grad_norm"][par["rank"] == 0]
    r1 = par["grad_norm"][par["rank"] == 1]
    np.testing.assert_allclose(r0, r1, rtol=1e-5)
    assert [p[0] for p in run.probes] == [0, 2]  # rank 0 only
    assert os.path.isdir(out / "probe")
