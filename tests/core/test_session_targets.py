"""Sessions keep non-class targets: the file a target names is checked and found like others."""

from __future__ import annotations

import pytest

from hookscope.core.errors import HookScopeError
from hookscope.core.io.session import Session


@pytest.mark.parametrize(
    ("target", "name", "what"),
    [("3@{p}", "mask.png", "target mask"), ("similar:{p}", "ref.png", "reference image")],
)
def test_target_file_moved_next_to_the_session(tmp_path, target, name, what):
    away = tmp_path / "gone" / name
    session = Session(model="demo", target=target.format(p=away))
    assert (what, "target", str(away)) in session.files()
    path = session.save(tmp_path / "s.json")
    with pytest.raises(HookScopeError, match=f"session's {what} .*{name} is missing"):
        Session.load(path)
    (tmp_path / name).write_bytes(b"x")  # put next to the session file: found there
    loaded = Session.load(path)
    assert loaded.target == target.format(p=tmp_path / name)


def test_plain_targets_name_no_file():
    for target in (3, "cat", "box:2", None):
        assert Session(model="demo", target=target).files() == []
