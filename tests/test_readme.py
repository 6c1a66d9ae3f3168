"""The README as a newcomer reads it: its Python snippet runs as written, from the repo's folder."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def block_with(text: str) -> str:
    (code,) = [b for b in python_blocks() if text in b]
    return code


def test_the_python_snippet_runs_as_written(monkeypatch, capsys):
    code = block_with("HookSession(")
    monkeypatch.chdir(ROOT)  # "Run from the repository's folder", as the README says
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[(1, 'car', 0.9")  # the bundled car_road.png is a car
    assert out[1] == "torch.Size([1, 128, 12, 12]) torch.Size([1, 128, 12, 12])"
    logits = [float(v) for v in re.findall(r"-?\d+\.\d+", out[2])]
    assert len(logits) == 4 and max(map(abs, logits)) < 10  # the record missed the add_(100)


def test_the_two_commands_for_a_fresh_machine_are_there():
    text = (ROOT / "README.md").read_text()
    assert "pip install -e . && python main.py" in text
    assert 'pip install -e ".[dev]" && python -m pytest -q' in text
    assert "CPU-only build of torch" in text and "://" not in text.split("## The app")[0]


def test_the_explain_snippet_runs_as_written(monkeypatch, capsys):
    code = block_with("hookscope.explain(")
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "features.block3 (96, 96) float32 class 1 (car)"
    assert out[2].split()[:3] == ["0", "1", "car"] and float(out[2].split()[3]) > 0.9
    assert out[-1] == "16 (96, 96)"


def test_the_watch_snippet_runs_as_written(monkeypatch, capsys, tmp_path):
    code = block_with("hookscope.watch(")
    monkeypatch.chdir(tmp_path)  # runs/readme lands in a temporary folder
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    from hookscope.core.training.store import read_run

    run = read_run(tmp_path / "runs" / "readme")
    assert sorted({int(s) for s in run.rows("module")["step"]}) == [0, 5, 10, 15]
    assert [p[0] for p in run.probes] == [0] and run.probes[0][1].shape == (2, 32, 32)
    assert len(run.rows("loss")["loss"]) == 20
    assert capsys.readouterr().out == ""  # a small healthy net: nothing to report


def test_the_view_snippet_runs_as_written(monkeypatch, capsys, tmp_path):
    from PySide6.QtCore import QSettings

    code = block_with("hookscope.view(")
    monkeypatch.chdir(ROOT)
    # The window remembers its layout: keep the user's own settings out of the test.
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    scope = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), scope)  # offscreen: tests/conftest.py
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 [0.02 0.94 0.02 0.02] {'features.block3': (96, 96)}"
    assert scope["v"].closed and scope["v"].window is None


def readme_command_block() -> str:
    section = (ROOT / "README.md").read_text().split("## Command line", 1)[1]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def readme_options() -> dict[str, set[str]]:
    """Flags the README's command block lists, per subcommand ('' = the app, SUBCOMMAND = all)."""
    options: dict[str, set[str]] = {}
    current = None
    for line in readme_command_block().splitlines():
        words = line.split("#")[0].split()
        if words[:2] == ["python", "main.py"]:
            current = words[2] if len(words) > 2 and not words[2].startswith(("-", "[")) else ""
            options.setdefault(current, set())
        if current is not None:
            options[current] |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line.split("#")[0]))
    return options


def parser_options() -> dict[str, set[str]]:
    """Flags of `python main.py -h` ('') and of every subcommand's `-h`, without --help."""
    import argparse

    from hookscope.gui.command import build_parser

    def flags(parser) -> set[str]:
        found = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        return found - {"--help"}

    parser = build_parser()
    (subs,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": flags(parser), **{name: flags(sub) for name, sub in subs.choices.items()}}


def test_the_command_block_lists_every_option_of_every_subcommand():
    readme, real = readme_options(), parser_options()
    common = readme.pop("SUBCOMMAND")  # "every subcommand with --model takes these"
    assert sorted(readme) == sorted(real), "README's subcommands differ from -h"
    for name, flags in real.items():
        listed = readme[name] | (common if "--model" in flags else set())
        assert flags - listed == set(), f"{name or 'the app'}: -h options missing from the README"
        assert listed - flags == set(), f"{name or 'the app'}: README options that -h lacks"
    # The drift the issue found is closed (a number, not "it ran").
    assert {"--topk", "--grad-noise"} <= readme["probe"] and "--seed" in readme["evaluate"]
    assert {"atlas", "diagnose"} <= set(readme) and "--batch-size" in readme["importance"]


def test_the_readme_describes_every_panel():
    from hookscope.gui import main_window as mw

    text = (ROOT / "README.md").read_text().split("## The app", 1)[1].split("## Tour")[0]
    fixed = [mw.ImageDock, mw.LayerStatsDock, mw.ModelTreeDock, mw.PredictionsDock]
    docks = fixed + mw.analysis_dock_classes() + mw.analysis_dock_classes(mw.EXPERIMENT_DOCKS)
    titles = {cls.TITLE for cls in docks}
    assert len(titles) == 17  # every dock module present (dataset, trust, training included)
    assert {t for t in titles if f"**{t}**" not in text} == set()
