"""HookSession on the worked example from the hooks tutorial, and tensor-hook basics."""

import pytest
import torch
from torch import nn

from hookscope.core.engine.hooks import HookSession, hook_count


def golden_model():
    """Linear(3,4) → ReLU → Linear(4,1) with the tutorial's weights."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2, 3], [-4, -5, -6], [7, 8, 9], [-10, -11, -12]]))
        model[0].bias.copy_(torch.tensor([1.0, 2, 3, 4]))
        model[2].weight.copy_(torch.tensor([[1.0, 2, 3, 4]]))
        model[2].bias.fill_(1.0)
    return model


def test_golden_example_every_number():
    model = golden_model()
    x = torch.ones(1, 3, requires_grad=True)
    with HookSession(model, ["0", "1", "2"]) as s:
        out = model(x)
        out.backward()
    fc1, relu, fc2 = (s.records[n][0] for n in ("0", "1", "2"))
    assert fc1.output.tolist() == [[7.0, -13.0, 27.0, -29.0]]
    assert relu.input.tolist() == [[7.0, -13.0, 27.0, -29.0]]
    assert relu.output.tolist() == [[7.0, 0.0, 27.0, 0.0]]
    assert fc2.output.tolist() == [[89.0]]
    assert relu.grad_output.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert fc1.grad_output.tolist() == [[1.0, 0.0, 3.0, 0.0]]
    assert x.grad.tolist() == [[22.0, 26.0, 30.0]]
    assert hook_count(model) == 0


def test_tensor_hook_returning_double_doubles_upstream_grads():
    model = golden_model()
    x = torch.ones(1, 3, requires_grad=True)
    h = model[0](x)
    h.register_hook(lambda g: 2 * g)
    model[2](model[1](h)).backward()
    assert x.grad.tolist() == [[44.0, 52.0, 60.0]]


def test_several_hooks_on_one_tensor_run_in_registration_order():
    x = torch.ones(2, requires_grad=True)
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(("first", g.tolist())) or g + 1)
    y.register_hook(lambda g: seen.append(("second", g.tolist())) or g * 10)
    y.sum().backward()
    assert seen == [("first", [1.0, 1.0]), ("second", [2.0, 2.0])]
    assert x.grad.tolist() == [60.0, 60.0]


def test_retain_grad_gives_the_session_values():
    model = golden_model()
    x = torch.ones(1, 3, requires_grad=True)
    with HookSession(model, ["0", "1"]) as s:
        h = model[0](x)
        h.retain_grad()
        r = model[1](h)
        r.retain_grad()
        model[2](r).backward()
    assert torch.equal(s.records["0"][0].grad_output, h.grad)
    assert torch.equal(s.records["1"][0].grad_output, r.grad)


def test_forward_only_session_records_no_grads():
    model = golden_model()
    with HookSession(model, ["1"], grads=False) as s:
        model(torch.ones(1, 3, requires_grad=True)).backward()
    assert s.records["1"][0].grads == {}
    assert s.records["1"][0].output.tolist() == [[7.0, 0.0, 27.0, 0.0]]


def test_hooks_removed_when_the_body_raises():
    model = golden_model()
    with pytest.raises(ValueError), HookSession(model, ["0", "1", "2"]):
        raise ValueError("boom")
    assert hook_count(model) == 0


def test_unknown_layer_is_one_sentence():
    from hookscope.core.errors import HookScopeError

    with pytest.raises(HookScopeError, match="no layer named 'fc9'"):
        HookSession(golden_model(), ["fc9"])


def test_memory_cap_drops_calls_and_counts_them():
    model = nn.Sequential(nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 1000))
    with HookSession(model, ["0", "1", "2"], max_bytes=10_000, inputs=False) as s:
        model(torch.randn(1, 1000))
    kept = sum(1 for recs in s.records.values() for r in recs if r.outputs)
    assert s.dropped == 1 and kept == 2  # 4 kB each: the third would pass 10 kB


def test_float16_storage_halves_record_size():
    model = golden_model()
    x = torch.randn(8, 3)
    with HookSession(model, ["0"], dtype=torch.float16) as s:
        model(x)
    out = s.records["0"][0].output
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), model[0](x), rtol=1e-3, atol=1e-3)  # fp16: 11-bit mantissa


def test_records_are_owned_after_the_session_exits():
    model = golden_model()
    x = torch.ones(1, 3)
    with HookSession(model, ["0", "2"], grads=False) as s:
        out = model(x)
    fc2, fc1 = s.records["2"][0], s.records["0"][0]
    out.add_(100)  # the caller's live output, edited after the session
    x.mul_(0)  # and the caller's input, which the first layer recorded
    assert fc2.output.tolist() == [[89.0]]
    assert fc1.input.tolist() == [[1.0, 1.0, 1.0]]
    assert hook_count(model) == 0


def test_records_only_the_session_holds_are_not_copied_at_exit():
    """Copy-on-write stays cheap: an activation nobody else holds keeps its memory."""
    model = golden_model()
    seen = {}

    def note(module, args, output):
        seen["ptr"] = output.untyped_storage().data_ptr()

    handle = model[0].register_forward_hook(note)
    try:
        with torch.no_grad(), HookSession(model, ["0", "2"], inputs=False) as s:
            out = model(torch.ones(1, 3))
    finally:
        handle.remove()
    # fc1's output was freed by the forward (only the record holds it): no clone was made.
    assert s.records["0"][0].output.untyped_storage().data_ptr() == seen["ptr"]
    assert s.records["0"][0].output.tolist() == [[7.0, -13.0, 27.0, -29.0]]
    out.add_(1)
    assert s.records["2"][0].output.tolist() == [[89.0]]
