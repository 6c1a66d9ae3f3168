"""Issue 22 §1: the policy for jobs that never return (timeouts, what is abandoned, interrupt)."""

from __future__ import annotations

import threading
import time

import pytest

from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.stopping import (
    LOAD_TIMEOUT_ENV,
    StopPolicy,
    UserCodeStopped,
    cancel_sentence,
    interrupt_thread,
    timeout_sentence,
)
from hookscope.core.reporting import ModelGate


def test_default_policy_times_out_loads_only():
    policy = StopPolicy()
    assert policy.timeout_s("load", long_lane=False) == 120.0
    assert policy.timeout_s("probe", long_lane=False) is None
    assert policy.timeout_s("scan", long_lane=True) is None
    assert StopPolicy(run_timeout_s=3).timeout_s("probe", long_lane=False) == 3
    # A run timeout never applies to a long job (a scan takes as long as its folder).
    assert StopPolicy(run_timeout_s=3).timeout_s("scan", long_lane=True) is None


def test_loads_and_interactive_runs_are_abandoned_long_jobs_are_not():
    policy = StopPolicy()
    assert policy.may_abandon("load", long_lane=False)
    assert policy.may_abandon("probe", long_lane=False)
    assert policy.may_abandon("before_after", long_lane=False)
    assert not policy.may_abandon("scan", long_lane=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"load_timeout_s": 0},
        {"load_timeout_s": -1},
        {"grace_s": float("nan")},
        {"run_timeout_s": True},
        {"grace_s": None},
        {"load_timeout_s": "2"},
    ],
    ids=str,
)
def test_bad_settings_are_one_sentence(fields):
    with pytest.raises(HookScopeError) as err:
        StopPolicy(**fields)
    text = str(err.value)
    assert text.endswith(".") and "\n" not in text and next(iter(fields)) in text


def test_load_timeout_from_the_environment():
    assert StopPolicy.from_env({}).load_timeout_s == 120.0
    assert StopPolicy.from_env({LOAD_TIMEOUT_ENV: "300"}).load_timeout_s == 300.0
    assert StopPolicy.from_env({LOAD_TIMEOUT_ENV: "0"}).load_timeout_s is None
    with pytest.raises(HookScopeError, match=LOAD_TIMEOUT_ENV):
        StopPolicy.from_env({LOAD_TIMEOUT_ENV: "soon"})


def test_sentences_name_the_timeout_and_what_is_kept():
    load = timeout_sentence("load", 120.0)
    assert "120 s load timeout" in load and "loaded nothing" in load
    assert LOAD_TIMEOUT_ENV in load
    run = timeout_sentence("probe", 2.5)
    assert "run took longer than the 2.5 s run timeout" in run and "no new result" in run
    for text in (load, run, cancel_sentence("probe"), cancel_sentence("load")):
        assert text.count(". ") == 0 and text.endswith(".") and "\n" not in text
    assert "fresh worker thread" in cancel_sentence("load")


def test_interrupt_ends_a_pure_python_loop_and_finally_blocks_run():
    seen = {}

    def loop():
        seen["id"] = threading.get_ident()
        try:
            while True:  # the user's forward: no cancel check ever runs here
                pass
        finally:
            seen["cleaned"] = True

    def run():
        try:
            loop()
        except UserCodeStopped:
            seen["stopped"] = True

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while "id" not in seen:
        time.sleep(0.01)
    started = time.perf_counter()
    assert interrupt_thread(seen["id"])
    thread.join(5)
    assert not thread.is_alive() and seen == {"id": seen["id"], "cleaned": True, "stopped": True}
    assert time.perf_counter() - started < 1.0
    assert not interrupt_thread(seen["id"])  # a thread that ended is not found


def test_a_forfeited_gate_ignores_the_old_owners_release():
    gate = ModelGate()
    held, release = threading.Event(), threading.Event()
    owner = {}

    def stuck():
        owner["id"] = threading.get_ident()
        with gate.hold():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    held.wait(5)
    assert not gate.forfeit(threading.get_ident())  # not the owner: nothing changes
    assert gate.forfeit(owner["id"])
    with gate.hold():  # the next run takes the model at once
        release.set()
        thread.join(5)  # the old owner's release must not free the gate under us
        assert gate._owner == threading.get_ident() and gate._depth == 1
    assert gate._owner is None and gate._depth == 0
