"""Judge a fault test afterwards, from the workload's history and every node's log on disk.

The logs are read read-only with ``replog.storage.inspect.iter_records`` after the processes
are stopped (no lock, no repair, and a frame that fails its CRC raises instead of being
returned). ``commit`` is the commit index every node reported before the cluster stopped.
:func:`check_history` needs no servers: the checker's own tests feed it fabricated histories.

The logs (each an AssertionError naming what broke):
- every node's log is dense: offsets ``1, 2, ...``, each stored Record's offset its position
  (no-op, membership and address-book records count as present);
- every node holds at least ``commit`` records and the logs are byte-identical up to it.

Every outcome, judged against the committed log (a *copy* of a batch is its values as user
records at contiguous offsets, in order):
- an ``ok`` attempt: its batch is at its base offset, whole, in order, at or below the commit;
  no two acknowledged batches share an offset;
- a ``fail`` attempt (certainly not applied) applied nothing: a batch has at most one copy per
  attempt that was ok or unknown, so a batch whose every attempt failed is nowhere;
- an ``info`` attempt (unknown) may have been applied once, or not at all;
- so duplicates of a batch are allowed only up to its ok + unknown attempts: never for a
  batch acknowledged once with no other attempt;
- a batch is all or nothing: a PARTIAL batch (some of its records in the log outside a whole
  copy of it) is always a violation, whatever its attempts said;
- nothing from nowhere: every user record holds a value some attempt sent;
- per producer (one batch in flight at a time), acknowledged batches are in the log in the
  order they were acknowledged;
- every record a consumer was shown is in the committed log at its offset with its value;
- with ``exactly_once`` (idempotent producers, whose retries the leader deduplicates): no
  batch is stored more than once, whatever its attempts said, and every acknowledgement of
  a batch (a retry's too) names the same offset.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from replog.storage.inspect import iter_records
from replog.v1.record_pb2 import Record
from tests.cluster.workload import FAIL, INFO, OK, Attempt, Seen, Workload

__all__ = ["Summary", "check", "check_history", "read_log"]


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts for the test's report."""

    commit: int
    batches: int
    acked: int
    failed: int
    unknown: int
    unknown_present: int
    duplicates: int
    seen: int
    user_records: int

    def __str__(self) -> str:
        return (
            f"commit={self.commit} batches={self.batches} attempts: ok={self.acked} "
            f"failed={self.failed} unknown={self.unknown} (their batch in the log: "
            f"{self.unknown_present}) extra copies={self.duplicates} seen={self.seen} "
            f"user_records={self.user_records}"
        )


def read_log(directory: Path) -> list[Record]:
    """Every record of a stopped node's log directory, checked frame by frame."""
    return [record for record, _ in iter_records(str(directory))]


def check(
    workload: Workload, log_dirs: Mapping[str, Path], commit: int, *, exactly_once: bool = False
) -> Summary:
    """Read every node's log and judge the workload's history against them."""
    logs = {name: read_log(path) for name, path in log_dirs.items()}
    return check_history(workload.ops, workload.seen, logs, commit, exactly_once=exactly_once)


def check_history(
    attempts: Iterable[Attempt],
    seen: Iterable[Seen],
    logs: Mapping[str, Sequence[Record]],
    commit: int,
    *,
    exactly_once: bool = False,
) -> Summary:
    """Assert every invariant of the module docstring; return counts for the report."""
    attempts = list(attempts)
    seen = list(seen)
    reference = _check_logs(logs, commit)
    batches = _group(attempts)
    where: dict[bytes, list[int]] = defaultdict(list)
    for record in reference:
        if record.type == 0:
            where[record.value].append(record.offset)
    sent = {v for b in batches.values() for v in b[0].values}
    for value, offsets in where.items():
        assert value in sent, f"offset {offsets[0]} holds {_short(value)}, which no producer sent"
    unknown_present = duplicates = 0
    for tries in batches.values():
        copies = _judge_batch(tries, reference, where, commit)
        if exactly_once:
            _check_once(tries, copies)
        duplicates += max(0, len(copies) - 1)
        if copies and any(t.kind == INFO for t in tries):
            unknown_present += 1
    _check_acked_apart(attempts)
    _check_producer_order(attempts)
    for s in seen:
        record = reference[s.offset - 1] if 1 <= s.offset <= len(reference) else None
        assert record is not None and record.type == 0 and record.value == s.value, (
            f"{s.node} showed a consumer {_short(s.value)} at {s.offset}, but the committed log "
            f"has {_short(record.value) if record else None} "
            f"(type {record.type if record else None}) there"
        )
    kinds = [a.kind for a in attempts]
    return Summary(
        commit=commit,
        batches=len(batches),
        acked=kinds.count(OK),
        failed=kinds.count(FAIL),
        unknown=kinds.count(INFO),
        unknown_present=unknown_present,
        duplicates=duplicates,
        seen=len(seen),
        user_records=sum(map(len, where.values())),
    )


def _check_logs(logs: Mapping[str, Sequence[Record]], commit: int) -> Sequence[Record]:
    """Dense logs, each at least ``commit`` long, byte-identical up to it; the committed
    prefix of one of them."""
    assert logs, "no log to check"
    for name, records in logs.items():
        for position, record in enumerate(records, 1):
            assert record.offset == position, (
                f"{name}: record {position} of its log says offset {record.offset} (a gap or "
                "a misplaced record)"
            )
        assert len(records) >= commit, f"{name} holds {len(records)} records < commit {commit}"
    reference_name = min(logs)
    reference = logs[reference_name][:commit]
    ref_bytes = [r.SerializeToString(deterministic=True) for r in reference]
    for name, records in logs.items():
        mine = [r.SerializeToString(deterministic=True) for r in records[:commit]]
        diverged = next(
            (i for i, (a, b) in enumerate(zip(mine, ref_bytes, strict=False)) if a != b), None
        )
        assert diverged is None, (
            f"{name} and {reference_name} differ at offset {diverged + 1} (<= commit "
            f"{commit}): {records[diverged]} vs {reference[diverged]}"
        )
    return reference


def _group(attempts: list[Attempt]) -> dict[tuple[int, int], list[Attempt]]:
    """Attempts by (worker, batch); every attempt of a batch sends the same values and no
    two batches share a value (the workload's contract; a broken harness fails here)."""
    batches: dict[tuple[int, int], list[Attempt]] = defaultdict(list)
    for a in attempts:
        batches[(a.worker, a.batch)].append(a)
    owner: dict[bytes, tuple[int, int]] = {}
    for key, tries in batches.items():
        values = tries[0].values
        assert values and all(t.values == values for t in tries), f"batch {key}: values vary"
        assert len(set(values)) == len(values), f"batch {key} repeats a value"
        for v in values:
            assert owner.setdefault(v, key) == key, (
                f"{_short(v)} is in batches {owner[v]} and {key}"
            )
    return batches


def _short(value: bytes) -> str:
    """A value for a message: its head (big test values are padded with dots)."""
    return repr(value) if len(value) <= 40 else f"{value[:24]!r}...({len(value)} bytes)"


def _spans(offsets: list[int]) -> str:
    """Sorted offsets as runs: ``[3, 4, 5, 9]`` -> ``3-5, 9``."""
    runs: list[list[int]] = []
    for o in offsets:
        if runs and o == runs[-1][1] + 1:
            runs[-1][1] = o
        else:
            runs.append([o, o])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def _describe(tries: list[Attempt]) -> str:
    values = tries[0].values
    outcomes = ", ".join(
        f"{t.kind}" + (f"@{t.offset}" if t.offset is not None else "") for t in tries
    )
    span = _short(values[0]) + (f"..{_short(values[-1])}" if len(values) > 1 else "")
    name = f"w{tries[0].worker}#{tries[0].batch}"
    return f"batch {name} ({len(values)} records {span}; attempts: {outcomes})"


def _judge_batch(
    tries: list[Attempt], reference: Sequence[Record], where: Mapping[bytes, list[int]], commit: int
) -> list[int]:
    """Judge one batch's attempts; return the base offsets of its whole copies."""
    values = tries[0].values
    size = len(values)

    def whole_at(base: int) -> bool:
        run = reference[base - 1 : base - 1 + size]
        return len(run) == size and all(
            r.type == 0 and r.value == v for r, v in zip(run, values, strict=True)
        )

    what = _describe(tries)
    for t in tries:
        if t.kind != OK:
            continue
        assert t.offset is not None and t.offset >= 1, f"{what}: acknowledged without an offset"
        end = t.offset + size - 1
        assert end <= commit, (
            f"{what}: acknowledged at {t.offset}..{end}, beyond the commit index {commit} "
            "(lost: the cluster no longer holds it)"
        )
        for i, v in enumerate(values):
            r = reference[t.offset - 1 + i]
            assert r.type == 0 and r.value == v, (
                f"{what}: acknowledged at {t.offset}, so record {i} ({_short(v)}) belongs at "
                f"offset {t.offset + i}, but every node holds {_short(r.value)} (type {r.type})"
            )
    copies = sorted({o for o in where.get(values[0], []) if whole_at(o)})
    covered = {o + i for o in copies for i in range(size)}
    stray = sorted(o for v in values for o in where.get(v, []) if o not in covered)
    if stray:
        present = {reference[o - 1].value for o in stray}
        if copies:
            problem = f"whole at {copies}, and a PARTIAL copy besides at offsets {_spans(stray)}"
        elif len(present) < size:
            problem = (
                f"PARTIAL batch: {len(present)} of its {size} records are in the committed log "
                f"(offsets {_spans(stray)}), {size - len(present)} are not"
            )
        else:
            problem = (
                f"all its records are in the log but not contiguous and in order: {_spans(stray)}"
            )
        raise AssertionError(f"{what}: {problem}; a batch must be applied whole or not at all")
    ok = sum(t.kind == OK for t in tries)
    unknown = sum(t.kind == INFO for t in tries)
    if len(copies) > ok + unknown:
        if ok + unknown == 0:
            problem = "every attempt was refused as certainly not applied, yet it is in the log"
        elif unknown == 0 and len(tries) == 1:
            problem = "acknowledged once with no other attempt, yet duplicated"
        else:
            problem = f"only {ok + unknown} of its attempts could have applied it (ok or unknown)"
        raise AssertionError(f"{what}: stored {len(copies)} times, at {copies}: {problem}")
    return copies


def _check_once(tries: list[Attempt], copies: list[int]) -> None:
    """An idempotent producer's batch is stored at most once, and acknowledged at it."""
    what = _describe(tries)
    assert len(copies) <= 1, (
        f"{what}: an idempotent producer's batch is stored {len(copies)} times, at {copies}"
    )
    acked = {t.offset for t in tries if t.kind == OK}
    assert len(acked) <= 1, f"{what}: its acknowledgements name different offsets {acked}"


def _check_acked_apart(attempts: list[Attempt]) -> None:
    """No two acknowledged batches share an offset (no split-brain acknowledgements); two
    acknowledgements of one batch (an idempotent retry's) may."""
    owners: dict[int, Attempt] = {}
    for a in attempts:
        if a.kind != OK or a.offset is None:
            continue
        for o in range(a.offset, a.offset + len(a.values)):
            owner = owners.setdefault(o, a)
            assert (owner.worker, owner.batch) == (a.worker, a.batch), (
                f"two acknowledged batches share offset {o}: {owner.name} and {a.name}"
            )


def _check_producer_order(attempts: list[Attempt]) -> None:
    """A producer's acknowledged batches are in the log in the order they were acknowledged."""
    by_worker: dict[int, list[Attempt]] = defaultdict(list)
    first_acks: dict[tuple[int, int], Attempt] = {}
    for a in sorted(attempts, key=lambda a: a.finished):
        if a.kind == OK and (a.worker, a.batch) not in first_acks:
            first_acks[a.worker, a.batch] = a
            by_worker[a.worker].append(a)
    for worker, acked in by_worker.items():
        acked.sort(key=lambda a: a.finished)
        for before, after in itertools.pairwise(acked):
            assert before.offset is not None and after.offset is not None
            assert after.offset > before.offset + len(before.values) - 1, (
                f"producer w{worker}: {after.name} was acknowledged at {after.offset} after "
                f"{before.name} at {before.offset}, but the log holds them in the other order"
            )
