"""Power cuts under Raft's store (``ReplogLogStore``: the log through ``Log.append_payloads``,
the hard state through ``write_atomically``), on the FaultyFileSystem.

Each case runs a random workload of appends (some replacing a tail), hard-state saves and
compactions, cuts the power (between operations, or in the middle of one with
``crash_after``; unsynced bytes lost or torn at random), reopens on the same disk, checks the
store against its model (tests/crash/raft_store_harness.py), and carries on from what it
holds: three cuts per seed, then a last reopen. Failures name the seed.

The mutants at the end prove the check has teeth: a state file written without its fsync or
without the directory fsync, or a log that never fsyncs, must fail it.
"""

from __future__ import annotations

import os
import random

import pytest

from replog.cluster import log_store
from replog.storage.config import SyncPolicy
from replog.storage.faultfs import FaultyFileSystem
from replog.storage.store import Store

from .raft_store_harness import (
    FLUSH_CHOICES,
    StoreModel,
    abandon,
    check_reopened,
    open_store,
    run_workload,
)

SEEDS = range(int(os.environ.get("REPLOG_POWER_SEEDS", "100")))


def store_power_loss_case(seed: int, *, crash_point: bool, sync: SyncPolicy = "always") -> None:
    """One seed: three power cuts in a row on one disk, the store checked after each."""
    rng = random.Random(seed)
    fs = FaultyFileSystem()
    model = StoreModel()
    flush_s = rng.choice(FLUSH_CHOICES)
    for round_ in range(4):
        context = f"seed={seed} round={round_} crash_point={crash_point} flush={flush_s}"
        try:
            store = open_store(fs, sync, flush_s)
        except Exception as exc:  # a store that cannot reopen after a power cut is a failure
            raise AssertionError(f"{context}: the store does not reopen: {exc!r}") from exc
        held = check_reopened(store, model, context)
        model.reopened(held, store.initial_state())
        if round_ == 3:
            break
        if crash_point:
            fs.crash_after(rng.randrange(1, 80))
        done = run_workload(store, model, rng, rng.randrange(5, 50), flush_s)
        if not crash_point:
            assert done > 0, f"{context}: the reopened store refused an append at its end"
        fs.power_cut(rng)
        abandon(store)
    store.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_power_cut_between_operations_keeps_raft_s_log_and_hard_state(seed: int) -> None:
    store_power_loss_case(seed, crash_point=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_power_cut_inside_an_operation_keeps_raft_s_log_and_hard_state(seed: int) -> None:
    store_power_loss_case(seed, crash_point=True)


def test_a_store_that_was_never_cut_reopens_with_everything() -> None:
    fs = FaultyFileSystem()
    model = StoreModel()
    store = open_store(fs, "always", 0.0)
    run_workload(store, model, random.Random(1), 40, 0.0)
    store.close()
    store = open_store(fs, "always", 0.0)
    held = check_reopened(store, model, "clean close")
    retained = {i: e for i, e in model.current.items() if i >= store.first_index()}
    assert held == retained and store.initial_state() == model.state
    store.close()


# -- mutants: the check must catch a skipped fsync on Raft's write path ----------------------


def _caught(seeds: range, **options: object) -> int:
    caught = 0
    for seed in seeds:
        try:
            store_power_loss_case(seed, **options)  # type: ignore[arg-type]
        except AssertionError:
            caught += 1
    return caught


def _write_atomically_without(skip: str) -> object:
    """``write_atomically`` with one of its two syncs left out (``"fsync"`` or ``"dir"``)."""

    def write(path: object, data: bytes, fs: object = None) -> None:
        assert fs is not None
        tmp = str(path.with_name(path.name + ".tmp"))  # type: ignore[attr-defined]
        handle = fs.open(tmp)  # type: ignore[attr-defined]
        handle.truncate(0)
        handle.append(data)
        if skip != "fsync":
            handle.sync()
        handle.close()
        fs.replace(tmp, str(path))  # type: ignore[attr-defined]
        if skip != "dir":
            fs.sync_dir(str(path.parent))  # type: ignore[attr-defined]

    return write


@pytest.mark.parametrize("skip", ["fsync", "dir"])
def test_the_check_catches_a_hard_state_written_without_a_sync(
    monkeypatch: pytest.MonkeyPatch, skip: str
) -> None:
    monkeypatch.setattr(log_store, "write_atomically", _write_atomically_without(skip))
    caught = _caught(range(10), crash_point=False)
    assert caught >= 8, f"only {caught} of 10 seeds noticed a hard state written without {skip}"


def test_the_check_catches_a_raft_log_that_skips_its_fsync(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Store, "fsync", lambda self: None)
    caught = _caught(range(10), crash_point=False)
    assert caught >= 8, f"only {caught} of 10 seeds noticed appended entries being lost"


def test_the_check_catches_a_raft_log_opened_with_a_sync_policy_that_never_fsyncs() -> None:
    caught = _caught(range(10), crash_point=False, sync="never")
    assert caught >= 8, f"only {caught} of 10 seeds noticed appended entries being lost"
