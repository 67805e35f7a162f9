"""The fault tests' checker on fabricated histories and logs (no servers): every violating
history is caught with a message naming what broke, every valid one passes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from replog.v1.record_pb2 import Record
from tests.cluster.checker import Summary, check_history
from tests.cluster.workload import FAIL, INFO, OK, Attempt, Seen

NOOP = object()


def values(worker: int, batch: int, size: int) -> tuple[bytes, ...]:
    return tuple(b"p%d-%d-%d" % (worker, batch, i) for i in range(size))


def attempt(
    worker: int,
    batch: int,
    kind: str,
    offset: int | None = None,
    *,
    size: int = 3,
    n: int = 0,
    at: float = 0.0,
) -> Attempt:
    """Attempt ``n`` of batch ``batch`` of ``worker``, finished at ``at`` (+1 s)."""
    return Attempt(worker, batch, n, values(worker, batch, size), "n1", kind, offset, at, at + 1)


def log(*parts: object) -> list[Record]:
    """A dense log from batches of values and NOOP markers (a leader's no-op record)."""
    records: list[Record] = []
    for part in parts:
        items = [None] if part is NOOP else list(part)  # type: ignore[call-overload]
        for value in items:
            offset = len(records) + 1
            if value is None:
                records.append(Record(offset=offset, term=1, type=1, value=b""))
            else:
                records.append(Record(offset=offset, term=1, value=value))
    return records


def judge(
    attempts: Sequence[Attempt],
    records: list[Record],
    *,
    seen: Sequence[Seen] = (),
    commit: int | None = None,
    nodes: int = 3,
) -> Summary:
    logs = {f"n{i + 1}": list(records) for i in range(nodes)}
    return check_history(attempts, seen, logs, len(records) if commit is None else commit)


# -- valid histories pass ----------------------------------------------------------------


def test_acknowledged_batches_at_their_offsets_pass() -> None:
    history = [attempt(0, 0, OK, 2), attempt(1, 0, OK, 5, size=2, at=1), attempt(0, 1, OK, 7, at=2)]
    summary = judge(history, log(NOOP, values(0, 0, 3), values(1, 0, 2), values(0, 1, 3)))
    assert (summary.acked, summary.user_records, summary.duplicates) == (3, 8, 0)


def test_an_unknown_batch_present_once_passes_and_so_does_one_absent() -> None:
    history = [attempt(0, 0, INFO), attempt(1, 0, INFO)]
    summary = judge(history, log(NOOP, values(0, 0, 3)))
    assert (summary.unknown, summary.unknown_present) == (2, 1)


def test_an_unknown_attempt_duplicated_by_its_acknowledged_retry_passes() -> None:
    history = [attempt(0, 0, INFO), attempt(0, 0, OK, 5, n=1, at=1)]
    summary = judge(history, log(NOOP, values(0, 0, 3), values(0, 0, 3)))
    assert summary.duplicates == 1


def test_a_failed_attempt_retried_with_success_is_judged_by_the_success() -> None:
    history = [attempt(0, 0, FAIL), attempt(0, 0, OK, 2, n=1, at=1)]
    judge(history, log(NOOP, values(0, 0, 3)))


def test_records_beyond_the_commit_index_are_not_judged() -> None:
    history = [attempt(0, 0, OK, 1, size=2), attempt(0, 1, INFO, size=4, at=1)]
    records = log(values(0, 0, 2), values(0, 1, 4)[:2])  # an uncommitted half on one node
    logs = {"n1": records, "n2": records[:2], "n3": records[:2]}
    check_history(history, [], logs, 2)


def test_records_shown_to_consumers_that_are_committed_pass() -> None:
    history = [attempt(0, 0, OK, 2)]
    seen = [Seen("n2", 2, b"p0-0-0", 0.0), Seen("n3", 4, b"p0-0-2", 0.0)]
    assert judge(history, log(NOOP, values(0, 0, 3)), seen=seen).seen == 2


# -- violating histories are caught --------------------------------------------------------


def caught(match: str, attempts: Sequence[Attempt], records: list[Record], **kw: object) -> None:
    with pytest.raises(AssertionError, match=match):
        judge(attempts, records, **kw)  # type: ignore[arg-type]


def test_a_lost_acknowledgement_is_caught() -> None:
    caught("beyond the commit index", [attempt(0, 0, OK, 2)], log(NOOP))
    caught("belongs at offset 2", [attempt(0, 0, OK, 2)], log(NOOP, NOOP, NOOP, NOOP))


def test_a_wrong_value_at_an_acknowledged_offset_is_caught() -> None:
    history = [attempt(0, 0, OK, 2), attempt(1, 0, INFO, size=1)]
    other = (b"p0-0-0", b"p1-0-0", b"p0-0-2")  # another producer's value in the middle
    caught(
        "record 1 .* belongs at offset 3, but every node holds b'p1-0-0'", history, log(NOOP, other)
    )
    caught("which no producer sent", history, log(NOOP, (b"p0-0-0", b"p0-0-X", b"p0-0-2")))


def test_a_duplicate_of_a_batch_acknowledged_once_is_caught() -> None:
    records = log(NOOP, values(0, 0, 3), values(0, 0, 3))
    caught(
        "acknowledged once with no other attempt, yet duplicated", [attempt(0, 0, OK, 2)], records
    )


def test_a_duplicate_beyond_the_attempts_that_could_apply_it_is_caught() -> None:
    history = [attempt(0, 0, INFO), attempt(0, 0, FAIL, n=1), attempt(0, 0, OK, 8, n=2, at=1)]
    records = log(NOOP, values(0, 0, 3), values(0, 0, 3), values(0, 0, 3))
    caught("stored 3 times.*only 2 of its attempts", history, records)


def test_batches_of_one_producer_stored_out_of_acknowledgement_order_are_caught() -> None:
    history = [attempt(0, 0, OK, 4, at=0), attempt(0, 1, OK, 1, at=1)]
    caught("in the other order", history, log(values(0, 1, 3), values(0, 0, 3)))


def test_a_batch_reordered_inside_itself_is_caught() -> None:
    swapped = (b"p0-0-0", b"p0-0-2", b"p0-0-1")
    caught("not contiguous and in order", [attempt(0, 0, INFO)], log(NOOP, swapped))
    caught("belongs at offset 3", [attempt(0, 0, OK, 2)], log(NOOP, swapped))


def test_a_partial_batch_is_caught_whatever_its_outcome() -> None:
    half = values(0, 0, 4)[:2]
    for kind in (INFO, FAIL):
        message = r"PARTIAL batch: 2 of its 4 records are in the committed log \(offsets 2-3\)"
        caught(message, [attempt(0, 0, kind, size=4)], log(NOOP, half))
    history = [attempt(0, 0, INFO, size=4), attempt(0, 0, OK, 4, size=4, n=1, at=1)]
    caught("a PARTIAL copy besides", history, log(NOOP, half, values(0, 0, 4)))


def test_a_batch_split_by_another_record_is_caught() -> None:
    split = log(NOOP, values(0, 0, 3)[:1], NOOP, values(0, 0, 3)[1:])
    caught("not contiguous and in order", [attempt(0, 0, INFO)], split)


def test_a_certainly_failed_batch_in_the_log_is_caught() -> None:
    history = [attempt(0, 0, FAIL), attempt(0, 0, FAIL, n=1)]
    caught("refused as certainly not applied, yet it is in the log", history, log(values(0, 0, 3)))


def test_a_record_no_one_sent_is_caught() -> None:
    caught("which no producer sent", [attempt(0, 0, INFO)], log(NOOP, [b"from-nowhere"]))


def test_two_acknowledged_batches_on_one_offset_are_caught() -> None:
    history = [attempt(0, 0, OK, 1, size=1), attempt(1, 0, OK, 1, size=1)]
    with pytest.raises(AssertionError):
        judge(history, log(values(0, 0, 1)))


def test_a_consumer_shown_an_uncommitted_or_changed_record_is_caught() -> None:
    history = [attempt(0, 0, INFO)]
    records = log(NOOP, values(0, 0, 3))
    caught("showed a consumer", history, records, seen=[Seen("n2", 5, b"p0-0-0", 0.0)])
    caught("showed a consumer", history, records, seen=[Seen("n2", 2, b"other", 0.0)])
    caught("showed a consumer", history, records, commit=1, seen=[Seen("n2", 2, b"p0-0-0", 0.0)])


def test_logs_with_a_gap_a_short_node_or_a_divergence_are_caught() -> None:
    history = [attempt(0, 0, INFO)]
    records = log(NOOP, values(0, 0, 3))
    gap = [records[0], *records[2:]]
    with pytest.raises(AssertionError, match="a gap"):
        check_history(history, [], {"n1": records, "n2": gap}, 1)
    with pytest.raises(AssertionError, match="< commit"):
        check_history(history, [], {"n1": records, "n2": records[:2]}, 4)
    other = [*records[:3], Record(offset=4, term=2, value=b"p0-0-2")]
    with pytest.raises(AssertionError, match="differ at offset 4"):
        check_history(history, [], {"n1": records, "n2": other}, 4)


# -- exactly once (idempotent producers) ---------------------------------------------------


def test_exactly_once_refuses_the_duplicate_an_unknown_attempt_allows_otherwise() -> None:
    history = [attempt(0, 0, INFO), attempt(0, 0, OK, 5, n=1, at=1)]
    records = log(NOOP, values(0, 0, 3), values(0, 0, 3))
    logs = {"n1": records, "n2": list(records), "n3": list(records)}
    with pytest.raises(AssertionError, match="idempotent producer's batch is stored 2 times"):
        check_history(history, (), logs, len(records), exactly_once=True)


def test_exactly_once_accepts_a_retry_acknowledged_at_the_first_copys_offset() -> None:
    history = [
        attempt(0, 0, OK, 2),
        attempt(0, 0, OK, 2, n=1, at=1),  # the leader answered the retry: a duplicate
        attempt(0, 1, INFO, at=2),
        attempt(0, 1, OK, 5, n=1, at=3),
    ]
    records = log(NOOP, values(0, 0, 3), values(0, 1, 3))
    logs = {"n1": records, "n2": list(records)}
    summary = check_history(history, (), logs, len(records), exactly_once=True)
    assert (summary.acked, summary.duplicates) == (3, 0)


def test_exactly_once_refuses_acknowledgements_of_one_batch_at_two_offsets() -> None:
    history = [attempt(0, 0, OK, 2), attempt(0, 0, OK, 5, n=1, at=1)]
    records = log(NOOP, values(0, 0, 3), values(0, 0, 3))
    logs = {"n1": records}
    with pytest.raises(AssertionError, match=r"stored 2 times|different offsets"):
        check_history(history, (), logs, len(records), exactly_once=True)
