"""The scan never crashes and never mixes results (issue 22, section 2).

Degenerate maps before scikit-learn, one scan per output folder, resume that notices a
replaced image, atomic part files and a resume past a torn one, extras checked before any
folder exists, and full / read-only disks as one sentence.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hookscope.core.io.scan_outputs as so
import hookscope.gui.command as main
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan import distinct_groups, embed_2d, spray
from hookscope.core.io.scan_outputs import lock_folder, open_scan, write_atomic
from hookscope.core.jobs.scan import scan_job
from hookscope.core.loading.models import LoadedModel, load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import Cancelled, Reporter, quiet

ROOT = Path(__file__).resolve().parents[2]
LAYER = "features.block3"
FAST = dict(workers=0, batch_size=2, chunk_rows=2)


def write_images(root: Path, n: int, seed: int = 0, identical: bool = False) -> Path:
    """``n`` tiny 32×32 PNGs (random noise; all the same picture when ``identical``)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    same = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for k in range(n):
        arr = same if identical else rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"img_{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """Six different images and their reference scan (one clean run)."""
    base = tmp_path_factory.mktemp("six")
    images = write_images(base / "images", 6, seed=1)
    return images


@pytest.fixture(scope="module")
def reference(six, demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    return open_scan(out)


def same_maps(a, b) -> float:
    """Largest difference between two scans' maps, rows matched by path."""
    assert a.column("path").tolist() == b.column("path").tolist()
    return float(np.abs(np.asarray(a.maps, np.float32) - np.asarray(b.maps, np.float32)).max())


# -- degenerate maps --------------------------------------------------------------------------
def blobs(n_per: int, seed: int = 0) -> np.ndarray:
    """Three groups of maps (a blob in three places), ``n_per`` each, slightly noisy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    maps = []
    for cy, cx in ((6, 6), (6, 25), (25, 16)):
        for _ in range(n_per):
            y, x = np.array([cy, cx]) + rng.normal(0, 1.0, 2)
            maps.append(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 18.0))
    return np.stack(maps).astype(np.float32)


@pytest.mark.parametrize(
    "maps, note",
    [
        (np.zeros((8, 32, 32), np.float32), "All 8 maps are the same"),
        (np.full((8, 32, 32), 0.3, np.float32), "All 8 maps are the same"),
        (np.full((8, 32, 32), np.nan, np.float32), "8 of 8 maps hold NaN"),
        (np.tile(blobs(1)[:1], (9, 1, 1)), "All 9 maps are the same"),
    ],
    ids=["all-zero", "constant", "all-nan", "identical"],
)
def test_maps_that_are_all_equal_are_one_cluster_with_a_note(maps, note):
    for clusters in ("auto", 3, 50):
        res = spray(maps, clusters)
        assert res.n_clusters == 1 and res.labels.tolist() == [0] * len(maps)
        assert res.embedding == "none" and np.isfinite(res.xy).all()
        assert any(note in n for n in res.notes), res.notes
        assert all(n.count(".") >= 1 and "\n" not in n for n in res.notes)


def test_nan_pixels_count_as_zero_and_are_noted():
    maps = blobs(8)
    clean = spray(maps, embed=False)
    maps[0, 3, 3] = np.nan
    maps[9, 0, :] = np.inf
    res = spray(maps)
    assert res.notes == (
        "2 of 24 maps hold NaN or infinite values (from the model's outputs or gradients); "
        "they were clustered with those pixels as 0.",
    )
    assert np.isfinite(res.features).all() and np.isfinite(res.xy).all()
    assert res.n_clusters == clean.n_clusters == 3
    assert res.labels.tolist() == clean.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8


def test_more_clusters_than_different_maps():
    maps = blobs(4)  # 12 different maps
    res = spray(maps, 12, embed=False)  # K == N: one cluster per map, nothing to say
    assert res.n_clusters == 12 and sorted(res.labels.tolist()) == list(range(12))
    assert res.notes == ()
    res = spray(maps, 40, embed=False)
    assert res.n_clusters == 12 and sorted(res.labels.tolist()) == list(range(12))
    assert res.notes == (
        "--clusters 40 asks for more clusters than there are different maps (12 among 12): "
        "each different map is its own cluster.",
    )
    # Three distinct maps, each four times: a group of equal maps is never split.
    dup = np.repeat(maps[[0, 4, 8]], 4, axis=0)
    for clusters in (3, 5):
        res = spray(dup, clusters)
        assert res.n_clusters == 3, clusters
        assert res.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
        assert np.isfinite(res.xy).all()
        assert res.notes == (() if clusters == 3 else (res.notes[0],))
    auto = spray(dup).labels.reshape(3, 4)  # the kNN graph (k = 10) joins two groups here
    assert (auto == auto[:, :1]).all() and len(np.unique(auto)) in (2, 3)
    # Fewer rows than clusters.
    two = spray(maps[[0, 8]], 5)
    assert two.n_clusters == 2 and sorted(two.labels.tolist()) == [0, 1]
    assert "(2 among 2)" in two.notes[0]
    one = spray(maps[:1], 5)
    assert one.n_clusters == 1 and one.labels.tolist() == [0]


def test_embedding_of_equal_rows_shares_a_point():
    maps = np.repeat(blobs(2)[[0, 2, 4, 5]], 3, axis=0)  # 4 distinct rows, 3 copies each
    feats = maps.reshape(len(maps), -1)
    assert distinct_groups(feats).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    xy, how = embed_2d(feats)
    assert how == "tsne" and np.isfinite(xy).all()
    assert np.array_equal(xy[0], xy[2]) and not np.array_equal(xy[0], xy[3])
    line, how = embed_2d(np.zeros((5, 16), np.float32))  # t-SNE here used to segfault
    assert how == "none" and line.tolist() == [[0.0, 0.0]] * 5


def test_folder_of_identical_images_is_one_cluster_with_a_note(demo, tmp_path, capsys):
    images = write_images(tmp_path / "same", 6, identical=True)
    out = tmp_path / "out"
    argv = ["scan", "--model", "demo", "--images", str(images), "--out", str(out)]
    assert main.main([*argv, "--layer", LAYER, "--workers", "0", "--clusters", "4"]) == 0
    printed = capsys.readouterr().out
    assert "; 1 clusters" in printed
    assert "note: All 6 maps are the same" in printed
    settings = json.loads((out / "scan.json").read_text())
    assert settings["state"] == "complete" and settings["clusters"] == 1
    assert settings["notes"][0].startswith("All 6 maps are the same")
    scan = open_scan(out)
    assert scan.column("cluster").tolist() == [0] * 6
    html = (out / "report.html").read_text()
    assert "<p class='note'>All 6 maps are the same (identical images" in html


class DeadLayer(torch.nn.Module):
    """A classifier whose ``conv`` gets no gradient: every Grad-CAM map is all zero."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(3, 5)

    def forward(self, x):
        f = self.conv(x)
        return self.fc(x.mean((2, 3))) + 0.0 * f.mean((1, 2, 3))[:, None]


def test_all_zero_gradcam_scans_to_one_cluster(tmp_path):
    """The issue's crash: all-zero maps (an HF ViT's Grad-CAM) segfaulted inside t-SNE."""
    loaded = LoadedModel(DeadLayer().eval(), "dead", None, InputSpec(size=(32, 32)))
    images = write_images(tmp_path / "noise", 8, seed=3)
    summary = scan_job(quiet(), loaded, images, "conv", out=tmp_path / "out", **FAST)
    scan = open_scan(tmp_path / "out")
    assert not np.asarray(scan.maps).any()  # every map is zero
    assert (summary.rows, summary.clusters, summary.errors) == (8, 1, 0)
    assert summary.notes == (
        "All 8 maps are the same (identical images, or maps that are all zero): they form one "
        "cluster.",
    )
    assert scan.settings["state"] == "complete" and scan.settings["embedding"] == "none"
    assert scan.column("cluster").tolist() == [0] * 8 and np.isfinite(scan.column("x")).all()


# -- one scan per folder ----------------------------------------------------------------------
def test_a_locked_folder_is_refused_in_one_sentence(demo, six, reference, tmp_path):
    out = tmp_path / "out"
    with lock_folder(out):
        with pytest.raises(HookScopeError) as err:
            scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    msg = str(err.value)
    assert msg == (
        f"Another scan is writing to {out}; wait for it to finish or pick another --out folder."
    )
    assert sorted(p.name for p in out.iterdir()) == [".scan.lock"]  # nothing was written
    summary = scan_job(quiet(), demo, six, LAYER, out=out, **FAST)  # the lock was released
    assert summary.computed == 6 and same_maps(open_scan(out), reference) <= 2e-3


def test_a_refused_folder_is_left_as_it_was(demo, six, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(HookScopeError, match="not empty and holds no scan"):
        scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # no lock file left behind


SLOW_SCAN = """
import sys, time
from pathlib import Path
from hookscope.core.jobs.scan import scan_job
from hookscope.core.loading.models import LoadedModel, load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import Reporter

images, out, go = sys.argv[1:4]
def on(done, total, message):
    if message == "Scanning" and done == 2:
        print("scanning", flush=True)  # the lock is held and rows are being written
        t = time.time()
        while not Path(go).exists() and time.time() - t < 120:
            time.sleep(0.05)
s = scan_job(Reporter(on), load_model("demo"), images, "features.block3", out=out,
             workers=0, batch_size=2, chunk_rows=2)
print("done", s.computed, flush=True)
"""


@pytest.mark.slow
def test_two_processes_into_one_folder(six, reference, tmp_path):
    """The second is refused (exit 2, one sentence); the first's rows carry their own maps."""
    out, go = tmp_path / "shared", tmp_path / "go"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    first = subprocess.Popen(
        [sys.executable, "-c", SLOW_SCAN, str(six), str(out), str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert first.stdout.readline().strip() == "scanning"
        second = subprocess.run(
            [sys.executable, "main.py", "scan", "--model", "demo", "--images", str(six),
             "--out", str(out), "--layer", LAYER, "--workers", "0"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
        )  # fmt: skip
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"hookscope: Another scan is writing to {out}; wait for it to finish or pick "
            "another --out folder."
        )
    finally:
        go.touch()
        rest, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert rest.strip() == "done 6"
    assert same_maps(open_scan(out), reference) <= 2e-3


# -- resume identity --------------------------------------------------------------------------
def test_a_replaced_image_is_computed_again(demo, six, reference, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(six, images)
    out = tmp_path / "out"
    scan_job(quiet(), demo, images, LAYER, out=out, **FAST)
    before = open_scan(out)
    stamps = before.column("file_stamp").tolist()
    st = os.stat(images / "img_03.png")
    assert stamps[3] == f"{st.st_size}:{st.st_mtime_ns}"
    # Same name, other picture (the PNG of another image), a later modification time.
    shutil.copyfile(six / "img_00.png", images / "img_03.png")
    os.utime(images / "img_03.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = scan_job(quiet(), demo, images, LAYER, out=out, **FAST)
    assert (again.computed, again.resumed, again.rows) == (1, 5, 6)
    assert again.notes[0] == (
        "1 image changed since the earlier run (e.g. img_03.png) and is computed again."
    )
    after = open_scan(out)
    new_map, old_map = after.map(3), before.map(3)
    assert np.abs(new_map - reference.map(0)).max() <= 2e-3  # now img_00's picture
    assert np.abs(new_map - old_map).max() > 0.1
    for k in (0, 1, 2, 4, 5):
        assert np.abs(after.map(k) - reference.map(k)).max() <= 2e-3
    third = scan_job(quiet(), demo, images, LAYER, out=out, **FAST)
    assert (third.computed, third.resumed, third.notes) == (0, 6, ())


# -- parts ------------------------------------------------------------------------------------
def test_part_writer_is_atomic(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [1, 2, 3]})
    final = tmp_path / "part-000000.parquet"

    def torn(tbl, where, **kw):  # the process dies half way through the bytes
        where.write(b"PAR1 half a file")
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(pq, "write_table", torn)
    with pytest.raises(OSError):
        write_atomic(table, final)
    assert not final.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_atomic(table, final)
    assert pq.read_table(final).column("a").to_pylist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


KILLED_SCAN = """
import os, signal, sys
import pyarrow.parquet as pq
from hookscope.core.jobs.scan import scan_job
from hookscope.core.loading.models import LoadedModel, load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import quiet

real, calls = pq.write_table, []
def write_table(table, where, **kw):
    calls.append(1)
    if len(calls) == 2:  # the second part: half its bytes reach the file, then SIGKILL
        where.write(b"PAR1" + b"\\0" * 100)
        where.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(table, where, **kw)
pq.write_table = write_table
scan_job(quiet(), load_model("demo"), sys.argv[1], "features.block3", out=sys.argv[2],
         workers=0, batch_size=2, chunk_rows=2)
"""


@pytest.mark.slow
def test_sigkill_in_a_part_write_then_resume(demo, six, reference, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run(
        [sys.executable, "-c", KILLED_SCAN, str(six), str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr
    parts = sorted(p.name for p in (out / "parts").iterdir())
    assert parts == ["maps.f16", "part-000000.parquet", "part-000001.tmp"]  # never a torn part
    assert json.loads((out / "scan.json").read_text())["state"] == "running"
    summary = scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    assert (summary.resumed, summary.computed, summary.rows) == (2, 4, 6)
    assert same_maps(open_scan(out), reference) <= 2e-3
    assert not (out / "parts").exists()


class StopAfter(Reporter):
    def __init__(self, n):
        super().__init__(self._on)
        self.n = n

    def _on(self, done, total, message):
        if message == "Scanning" and done >= self.n:
            self.cancel()


def test_a_zero_byte_part_is_set_aside_and_recomputed(demo, six, reference, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        scan_job(StopAfter(4), demo, six, LAYER, out=out, **FAST)
    part = out / "parts" / "part-000001.parquet"
    assert part.is_file()
    part.write_bytes(b"")  # a torn write from an older writer or a crashed file system
    summary = scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    assert (summary.resumed, summary.computed, summary.rows) == (2, 4, 6)
    assert summary.notes[0] == (
        "part-000001.parquet of an earlier run could not be read (a write cut short); its "
        "images are computed again."
    )
    assert same_maps(open_scan(out), reference) <= 2e-3


def test_unreadable_results_of_a_finished_scan_are_recomputed(demo, six, reference, tmp_path):
    out = tmp_path / "out"
    scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    (out / "results.parquet").write_bytes(b"")
    with pytest.raises(HookScopeError, match="cannot be read"):
        open_scan(out)
    summary = scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    assert (summary.resumed, summary.computed) == (0, 6)
    assert summary.notes[0].startswith("The earlier results in ")
    assert same_maps(open_scan(out), reference) <= 2e-3


# -- extras and disks -------------------------------------------------------------------------
@pytest.mark.parametrize("module, name", [("pyarrow.parquet", "pyarrow"),
                                          ("sklearn.manifold", "scikit-learn")])  # fmt: skip
def test_a_missing_extra_stops_before_the_folder_exists(demo, six, tmp_path, monkeypatch,
                                                        module, name):  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)  # import now fails as if not installed
    out = tmp_path / "out"
    with pytest.raises(HookScopeError) as err:
        scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    assert str(err.value) == (
        f"The dataset scan needs {name}, which is not installed: pip install 'hookscope[scan]'."
    )
    assert not out.exists()


def test_a_read_only_folder_is_one_sentence(demo, six, tmp_path, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        (parent / "probe").touch()
        writable = True  # root ignores the mode: fake the read-only file system instead
        (parent / "probe").unlink()
    except PermissionError:
        writable = False
    try:
        if writable:
            real = Path.mkdir

            def read_only(self, *a, **kw):
                if self == parent / "out":
                    raise OSError(errno.EROFS, "Read-only file system", str(self))
                return real(self, *a, **kw)

            monkeypatch.setattr(Path, "mkdir", read_only)
        with pytest.raises(HookScopeError) as err:
            scan_job(quiet(), demo, six, LAYER, out=parent / "out", **FAST)
    finally:
        parent.chmod(0o700)
    assert str(err.value) == (
        f"{parent / 'out'} cannot be written (a read-only folder or no permission); pick "
        "another --out folder."
    )


def test_a_full_disk_is_one_sentence(demo, six, tmp_path, monkeypatch, capsys):
    def full(table, final):
        raise OSError(errno.ENOSPC, "No space left on device", str(final))

    monkeypatch.setattr(so, "write_atomic", full)
    out = tmp_path / "out"
    argv = ["scan", "--model", "demo", "--images", str(six), "--out", str(out)]
    assert main.main([*argv, "--layer", LAYER, "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err == (
        f"hookscope: The disk holding {out} is full; free some space or pick another --out "
        "folder (running the scan again resumes it)."
    )
    monkeypatch.undo()
    lock = lock_folder(out)  # the failed scan released its lock
    lock.release()


def test_rows_without_a_stamp_are_computed_again(demo, six, reference, tmp_path):
    """Parts written before rows carried ``file_stamp`` cannot prove their image unchanged."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        scan_job(StopAfter(4), demo, six, LAYER, out=out, **FAST)
    for part in sorted((out / "parts").glob("part-*.parquet")):
        pq.write_table(pq.read_table(part).drop_columns(["file_stamp"]), part)
    summary = scan_job(quiet(), demo, six, LAYER, out=out, **FAST)
    assert (summary.resumed, summary.computed) == (0, 6)
    assert summary.notes[0] == (
        "4 rows of the earlier run carry no file stamp (an older HookScope); their images are "
        "computed again."
    )
    assert same_maps(open_scan(out), reference) <= 2e-3


def test_a_file_system_without_locks_still_scans(tmp_path, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    lock = lock_folder(tmp_path / "share")
    assert (tmp_path / "share" / ".scan.lock").is_file()
    lock.release()


def test_missing_ray_stops_before_the_folder_exists(demo, six, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "out"
    with pytest.raises(HookScopeError) as err:
        scan_job(quiet(), demo, six, LAYER, out=out, ray="local", **FAST)
    assert str(err.value) == (
        "--ray needs Ray, which is not installed: pip install 'hookscope[scale]'."
    )
    assert not out.exists()


def test_disk_error_sentences(tmp_path):
    out = tmp_path / "out"
    full = so.disk_error(OSError(errno.ENOSPC, "No space left on device", str(out / "x")), out)
    assert str(full) == (
        f"The disk holding {out} is full; free some space or pick another --out folder "
        "(running the scan again resumes it)."
    )
    ro = so.disk_error(OSError(errno.EROFS, "Read-only file system", str(out)), out)
    assert str(ro).startswith(f"{out} cannot be written (a read-only folder")
    shm = so.disk_error(OSError(errno.ENOSPC, "No space left on device", "/dev/shm/t"), out)
    assert str(shm) == (
        "The scan stopped on /dev/shm/t: No space left on device; running it again resumes it."
    )
    io = so.disk_error(OSError(errno.EIO, "Input/output error", str(out / "a")), out)
    assert str(io) == f"Writing the scan to {out} failed: Input/output error ({out / 'a'})."
