"""Issue 22 §1 without a window: nothing a file says runs code, sizes from files are bounded.

Every payload writes a marker file; a test passes only if the marker never appears and the
user sees one sentence. The session cases come from the shared bad-input catalogue
(``tests.catalogue.SESSION_CASES``), which the app and the command line run too.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from hookscope.core.errors import HookScopeError
from hookscope.core.io.hookcode import hook_code
from hookscope.core.io.session import MAX_INPUT_SIDE, Session
from hookscope.core.loading.models import apply_state_dict, load_model
from tests.catalogue import SESSION_CASES, Payload, _hf_remote_code

ROOT = Path(__file__).resolve().parents[2]
EVIL_LAYER = "features.block3\nimport os; os.system('touch MARKER')"


def one_sentence(text: str) -> None:
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text, text


@pytest.mark.parametrize("case", SESSION_CASES, ids=lambda c: c.id)
def test_session_case_through_the_core_reader(case, tmp_path):
    """What reopening does without a window: read, refuse unapproved code, load safely."""
    fields = case.make(tmp_path)
    with pytest.raises(HookScopeError) as err:
        session = Session.load(fields["session"])
        session.require_trust(False)
        load_model(session.model, session.weights)  # never session.gui["trust_pickle"]
    text = str(err.value)
    assert re.search(case.message, text), text
    one_sentence(text)
    if case.marker:
        assert not (tmp_path / case.marker).exists()


def test_session_names_the_factory_it_would_run_and_the_flag_decides(tmp_path):
    case = next(c for c in SESSION_CASES if c.id == "session-factory")
    session = Session.load(case.make(tmp_path)["session"])
    assert session.code_to_run() == ("factory", str(tmp_path / "net.py"))
    assert not (tmp_path / "pwned").exists()  # reading it ran nothing
    session.require_trust(True)  # the person's own flag: now it may run
    lm = load_model(session.model)
    assert (tmp_path / "pwned").exists() and isinstance(lm.model, nn.Sequential)


def test_a_session_keeps_only_the_models_layers(tmp_path):
    session = Session(
        model="demo",
        layers=["features.block3", EVIL_LAYER],
        grad_edits=[{"kind": "grad", "layer": EVIL_LAYER, "op": "scale", "value": 2.0}],
        act_edits=[{"kind": "act", "layer": "features.block3", "op": "zero", "channels": [1]}],
    )
    notes = session.drop_unknown_layers({"features.block3", "classifier"})
    assert session.layers == ["features.block3"] and session.grad_edits == []
    assert len(session.act_edits) == 1 and len(notes) == 2
    for note in notes:
        one_sentence(note)
        assert "\\n" in note  # the name is shown escaped, never as a line break


def test_input_size_bound_is_checked_before_anything_is_allocated(tmp_path):
    big = {"size": [MAX_INPUT_SIDE + 1, 8], "mean": [0.5] * 3, "std": [0.5] * 3}
    with pytest.raises(HookScopeError, match=f"larger than the {MAX_INPUT_SIDE}×"):
        Session.from_json(Session(model="demo", input_spec=big).to_json())
    ok = dict(big, size=[MAX_INPUT_SIDE, 8])
    assert Session.from_json(Session(model="demo", input_spec=ok).to_json()).input_spec == ok


# -- Hugging Face remote code ------------------------------------------------------------------
def test_hf_remote_code_is_refused_without_reading_stdin(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    spec = _hf_remote_code(tmp_path)

    def no_prompt(*_args):
        raise AssertionError("HookScope must never ask y/N on the terminal")

    monkeypatch.setattr(builtins, "input", no_prompt)
    with pytest.raises(HookScopeError) as err:
        load_model(spec)
    text = str(err.value)
    one_sentence(text)
    assert "asks to run its own Python code" in text and "never runs" in text
    assert not (tmp_path / "pwned").exists()


def test_hf_remote_code_from_the_command_line_answers_nothing(tmp_path):
    """A subprocess with "y" waiting on stdin: transformers' prompt would read it and run."""
    pytest.importorskip("transformers")
    spec = _hf_remote_code(tmp_path)
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "inspect", "--model", spec],
        input="y\ny\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "asks to run its own Python code" in lines[0], done.stderr
    assert "[y/N]" not in done.stdout + done.stderr
    assert not (tmp_path / "pwned").exists()


# -- weights files ------------------------------------------------------------------------------
def test_weights_holding_objects_get_hookscopes_own_whole_sentence(tmp_path):
    net = nn.Linear(3, 2)
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": net.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    target = nn.Linear(3, 2)
    with pytest.raises(HookScopeError) as err:
        apply_state_dict(target, path)
    text = str(err.value)
    one_sentence(text)
    assert "holds Python objects" in text and "runs code stored in the file" in text
    assert "--trust-pickle" in text and "trust its source" in text
    assert "Re-running" not in text and "weights_only" not in text  # not torch's cut text
    # The person's own flag reads it, and the weights are the saved ones.
    apply_state_dict(target, path, trust_pickle=True)
    assert torch.equal(target.weight, net.weight) and torch.equal(target.bias, net.bias)


def test_evil_weights_never_run_and_say_so(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(Payload(tmp_path / "pwned"), path)
    with pytest.raises(HookScopeError, match="refuses it; only if you trust its source"):
        load_model("demo", weights=path)
    assert not (tmp_path / "pwned").exists()


# -- factories that end the process --------------------------------------------------------------
@pytest.mark.parametrize(
    "body, words",
    [
        ("import sys\nsys.exit(3)\n", "Running net.py called sys.exit(3)"),
        ("def build():\n    raise SystemExit('bye')\n", "build() in net.py called sys.exit('bye')"),
    ],
)
def test_a_factory_calling_sys_exit_is_one_sentence(tmp_path, body, words):
    (tmp_path / "net.py").write_text(body)
    with pytest.raises(HookScopeError) as err:
        load_model(f"{tmp_path / 'net.py'}:build")
    one_sentence(str(err.value))
    assert words in str(err.value)


def test_sys_exit_in_a_factory_on_the_command_line_is_exit_2(tmp_path):
    (tmp_path / "net.py").write_text("import sys\nsys.exit(3)\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "inspect", "--model", f"{tmp_path}/net.py:build"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("hookscope: Running net.py called sys.exit(3)")
    assert len(done.stderr.strip().splitlines()) == 1


# -- the Hook code panel --------------------------------------------------------------------------
def test_hook_code_escapes_every_name_from_a_file(tmp_path):
    quote = 'x"""\\'
    code = hook_code(
        "demo",
        None,
        str(tmp_path / "a\"b'\n.png"),
        ["features.block3", EVIL_LAYER, quote],
        "3\nimport os",
        [{"kind": "grad", "layer": EVIL_LAYER, "op": "scale", "value": 2.0}],
        [{"kind": "act", "layer": EVIL_LAYER + '"""', "op": "zero", "channels": [1]}],
        image_edits=[{"op": "paste", "patch": "p\n.png", "mask": None, "xy": [0, 0]}],
    )
    tree = ast.parse(code)  # compiles
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not [c for c in calls if getattr(c.func, "attr", None) == "system"]
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imports == {"torch"}  # "import os" is only ever text
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert EVIL_LAYER in strings and quote in strings  # the exact names, as literals
    assert {"p\n.png"} <= {d["patch"] for n in ast.walk(tree) for d in _dicts(n)}


def _dicts(node):
    if isinstance(node, ast.List) and all(isinstance(e, ast.Dict) for e in node.elts):
        return [ast.literal_eval(e) for e in node.elts]
    return []


def test_running_hook_code_with_a_hostile_layer_runs_no_payload(tmp_path):
    code = hook_code(
        "demo",
        layers=["features.block3"],
        grad_edits=[{"kind": "grad", "layer": EVIL_LAYER, "op": "scale", "value": 2.0}],
    )
    script = tmp_path / "hooks.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    # The layer does not exist, so the script stops at its lookup, and runs nothing else.
    assert done.returncode == 1 and "KeyError" in done.stderr, done.stderr
    assert not (tmp_path / "MARKER").exists()


# -- command-line sizes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, limit",
    [
        (["evaluate", "--image", "x.png", "--layer", "l", "--steps", "100000000"], "1 to 1024"),
        (["scan", "--images", "d", "--layer", "l", "--map-size", "100000000"], "4 to 512"),
        (["scan", "--images", "d", "--layer", "l", "--batch-size", "100000000"], "1 to 1024"),
        (["importance", "--image", "x.png", "--layer", "l", "--batch-size", "1e8"], "1 to 1024"),
        (["cam", "--image", "x", "--layers", "l", "--out", "o.png", "--batch-size", "0"], "1 to"),
    ],
)
def test_cli_sizes_fail_at_parsing_naming_the_limit(argv, limit, capsys):
    from hookscope.gui.command import main

    with pytest.raises(SystemExit) as exit_:
        main([argv[0], "--model", "demo", *argv[1:]])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"must be a whole number from {limit}" in lines[0], err
