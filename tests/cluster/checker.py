"""Judge a fault test afterwards, from the workload's history and every node's log on disk.

The logs are read read-only with ``replog.storage.inspect.iter_records`` after the processes
are stopped (no lock, no repair, and a frame that fails its CRC raises instead of being
returned). ``commit`` is the commit index every node reported before the cluster stopped.

Invariants (each an AssertionError naming what broke):
- every node's log is dense: offsets ``1, 2, ...`` with no gap, and each stored Record's offset
  is its position (no-op, membership and address-book records count as present);
- every node holds at least ``commit`` records and the nodes' logs are byte-identical up to it;
- every acknowledged produce is at its offset with its value, as a user record, on every node,
  and no two acknowledged produces share an offset (no split-brain acknowledgements);
- a produce the server refused as ``certainly_not_applied`` is nowhere;
- a user record holds a value some producer sent (nothing from nowhere), at most once;
- every record a consumer was shown is in the final log at its offset with its value, and was
  committed (no consumer saw a record that later changed or vanished).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from replog.storage.inspect import iter_records
from replog.v1.record_pb2 import Record
from tests.cluster.workload import Workload

__all__ = ["Summary", "check", "read_log"]


@dataclass(frozen=True, slots=True)
class Summary:
    commit: int
    acked: int
    failed: int
    unknown: int
    unknown_present: int
    seen: int
    user_records: int

    def __str__(self) -> str:
        return (
            f"commit={self.commit} acked={self.acked} failed={self.failed} "
            f"unknown={self.unknown} (in log: {self.unknown_present}) seen={self.seen} "
            f"user_records={self.user_records}"
        )


def read_log(directory: Path) -> list[Record]:
    """Every record of a stopped node's log directory, checked frame by frame."""
    return [record for record, _ in iter_records(str(directory))]


def check(workload: Workload, log_dirs: Mapping[str, Path], commit: int) -> Summary:
    """Assert the invariants of the module docstring; return counts for the report."""
    logs = {name: read_log(path) for name, path in log_dirs.items()}
    for name, records in logs.items():
        _check_dense(name, records)
        assert len(records) >= commit, f"{name} holds {len(records)} records < commit {commit}"
    reference_name = min(logs)
    reference = logs[reference_name][:commit]
    ref_bytes = [r.SerializeToString(deterministic=True) for r in reference]
    for name, records in logs.items():
        mine = [r.SerializeToString(deterministic=True) for r in records[:commit]]
        diverged = next(
            (i + 1 for i, (a, b) in enumerate(zip(mine, ref_bytes, strict=True)) if a != b), None
        )
        assert diverged is None, (
            f"{name} and {reference_name} differ at offset {diverged} (<= commit {commit}): "
            f"{records[diverged - 1]} vs {reference[diverged - 1]}"
        )

    by_offset = {r.offset: r for r in reference}
    sent = {op.value for op in workload.ops}
    acked = [op for op in workload.ops if op.kind == "ok"]
    _check_acked(acked, logs)
    _check_user_records(reference, sent)
    failed = [op for op in workload.ops if op.kind == "fail"]
    values = {r.value: r.offset for r in reference if r.type == 0}
    for op in failed:
        assert op.value not in values, f"a refused produce was applied: {op} at {values[op.value]}"
    unknown = [op for op in workload.ops if op.kind == "info"]
    for seen in workload.seen:
        record = by_offset.get(seen.offset)
        assert record is not None and record.type == 0 and record.value == seen.value, (
            f"{seen.node} showed a consumer {seen.value!r} at {seen.offset}, but the committed "
            f"log has {record!r} there"
        )
    return Summary(
        commit=commit,
        acked=len(acked),
        failed=len(failed),
        unknown=len(unknown),
        unknown_present=sum(op.value in values for op in unknown),
        seen=len(workload.seen),
        user_records=len(values),
    )


def _check_dense(name: str, records: list[Record]) -> None:
    for position, record in enumerate(records, 1):
        assert record.offset == position, (
            f"{name}: record {position} of its log says offset {record.offset} (a gap or a "
            "misplaced record)"
        )


def _check_acked(acked: Iterable[object], logs: Mapping[str, list[Record]]) -> None:
    owners: dict[int, bytes] = {}
    for op in acked:
        offset, value = op.offset, op.value  # type: ignore[attr-defined]
        assert offset not in owners, (
            f"two acknowledged produces share offset {offset}: {owners[offset]!r} and {value!r}"
        )
        owners[offset] = value
        for name, records in logs.items():
            assert 1 <= offset <= len(records), f"{name} lost acknowledged {value!r} at {offset}"
            record = records[offset - 1]
            assert record.type == 0 and record.value == value, (
                f"{name} holds {record.value!r} (type {record.type}) at offset {offset}, "
                f"acknowledged as {value!r}"
            )


def _check_user_records(records: list[Record], sent: set[bytes]) -> None:
    where: dict[bytes, int] = {}
    for record in records:
        if record.type != 0:
            continue
        assert record.value in sent or record.value.startswith(b"seed"), (
            f"offset {record.offset} holds {record.value!r}, which no producer sent"
        )
        assert record.value not in where, (
            f"{record.value!r} is stored twice: offsets {where[record.value]} and {record.offset}"
        )
        where[record.value] = record.offset
