"""The installed package works: the wheel carries the demo and samples and runs outside the repo."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject lists packages (all under ``hookscope``): none may be missed."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    on_disk = find_packages(str(ROOT), include=["core*", "gui*"])
    assert sorted(listed) == sorted(["hookscope", *(f"hookscope.{p}" for p in on_disk)])


def _bundled() -> list[str]:
    """The repo's resources/ files as they must appear in the wheel."""
    files = [*RESOURCES.glob("*.pt"), *RESOURCES.glob("samples/*.png")]
    return sorted(f"hookscope/{p.relative_to(RESOURCES).as_posix()}" for p in files)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the source, as from a clean clone."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "main.py"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("core", "gui", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*cmd, "--no-index", "-w", str(out), str(src)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (whl,) = out.glob("hookscope-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_carries_the_demo_weights_and_the_samples(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = _bundled()
    weights = ["demo_clean.pt", "demo_shortcut.pt", "demo_vit-clean.pt", "demo_vit.pt"]
    assert [b for b in bundled if b.endswith(".pt")] == [f"hookscope/{w}" for w in weights]
    assert "hookscope/samples/airplane_sky.png" in bundled
    assert len(bundled) == len(weights) + len(list(RESOURCES.glob("samples/*.png")))
    assert set(bundled) <= names, sorted(set(bundled) - names)
    assert "hookscope/__init__.py" in names and "hookscope/gui/command.py" in names
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert {"hookscope/core/demo", "hookscope/gui/docks"} <= packages
    # One import name: nothing that would shadow (or be shadowed by) a user's own core/, gui/.
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"hookscope"}, tops


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site)]
        + [str(wheel)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    # A user's own project with packages named core and gui: neither shadows HookScope's.
    for own in ("core", "gui"):
        (elsewhere / own).mkdir(parents=True)
        (elsewhere / own / "__init__.py").write_text(f"raise SystemExit('the user's {own}')\n")
    env = {**os.environ, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}

    def hookscope(*args: str) -> subprocess.CompletedProcess:
        code = "import sys, hookscope.gui.command as c; sys.exit(c.main(sys.argv[1:]))"
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import hookscope as r; print(r.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where  # the wheel's copy, not the checkout
    tree = hookscope("inspect", "--model", "demo")
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.startswith("demo (shortcut): 246,676 parameters")
    sample = site / "hookscope" / "samples" / "airplane_sky.png"
    probe = hookscope("probe", "--model", "demo", "--image", str(sample), "--layers", "fc")
    assert probe.returncode == 0, probe.stderr
    assert "airplane" in probe.stdout


def test_code_imports_through_the_one_name():
    """No ``import core``/``gui`` anywhere: from a checkout both would be a second copy."""
    import re

    bad = re.compile(r"^\s*(from|import) (core|gui|main)\b", re.M)
    files = [
        p for d in ("core", "gui", "tests", "benchmarks", "docs") for p in (ROOT / d).rglob("*.py")
    ]
    found = [str(p.relative_to(ROOT)) for p in files if bad.search(p.read_text())]
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    found += ["README.md" for b in blocks if bad.search(b)]
    assert found == []
