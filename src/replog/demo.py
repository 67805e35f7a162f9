"""A two-minute tour of the embedded log: ``python -m replog.demo [DIR]`` (``make run``).

Opens ``./data`` (or DIR), appends a few records and a batch, reads them back, closes the
log, opens it again and shows that every offset survived.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from replog.errors import ReplogError
from replog.storage import Log, LogConfig
from replog.v1.record_pb2 import Record

__all__ = ["main", "run"]


def _show(record: Record) -> str:
    value = record.value.decode("utf-8", "replace")
    key = f" key={record.key.decode('utf-8', 'replace')!r}" if record.key else ""
    headers = "".join(f" {h.key}={h.value!r}" for h in record.headers)
    return f"  #{record.offset:<4} {value!r}{key}{headers}"


def run(directory: str) -> list[int]:
    """Run the tour in ``directory``; return the offsets appended (for tests)."""
    print(f"replog demo: an embedded, durable log in {directory}/\n")
    with Log(directory, LogConfig(sync="always")) as log:
        start = log.next_offset
        print(f"opened: {log.segment_count} segment(s), next offset {start}")
        first = log.append(b"hello, replog")
        second = log.append(b"user signed up", key=b"user-42", headers={"source": b"demo"})
        base = log.append_batch([f"batch record {i}".encode() for i in range(3)])
        offsets = [first, second, *range(base, base + 3)]
        print(f"appended 2 records and a batch of 3 -> offsets {offsets}")
        print("read back:")
        for record in log.read_batch(first, max_records=len(offsets)):
            print(_show(record))
    print("closed (fsynced, index trimmed).\n")
    with Log(directory) as log:
        print(
            f"reopened: offsets {log.lowest_offset}..{log.next_offset - 1} "
            f"in {log.segment_count} segment(s), {log.size_bytes:,} bytes"
        )
        again = [record.offset for record in log.read_batch(first, max_records=len(offsets))]
        same = "all there" if again == offsets else f"MISMATCH: {again}"
        print(f"our offsets after reopening: {again} - {same}")
    print(f"\ntry: replog log dump {directory} --from {first}    replog log check {directory}")
    return offsets


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m replog.demo [DIR]`` (default ``./data``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m replog.demo [DIR]   (default: ./data)", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        run(args[0] if args else "data")
    except ReplogError as exc:
        print(f"replog demo: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
