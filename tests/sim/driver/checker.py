"""Judge a driver simulation afterwards: every outcome against the final committed log.

``committed`` is the committed log after the liveness phase, entries ``1..n`` in order.
Each rule yields a violation message (a string that says what broke and where):

- every user record sits at the offset it says, and was sent by some attempt;
- an attempt's records are committed wholly (all of them, contiguous, in order) or not at all:
  a partial batch is a violation whatever the producer was told;
- an attempt reported ok (by the client's view or the node's future) is committed wholly at the
  offset it was given;
- an attempt reported certainly-not-applied has no committed record;
- a node future still pending at the end although its records are committed and that node
  applied them: the producer waits forever;
- a membership change reported applied at ``index`` is the committed configuration entry there;
- a learner is promoted only once it has acknowledged something (its match index > 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from replog.raft.membership import ConfChange
from replog.raft.messages import Entry, EntryKind, base_kind
from replog.v1.record_pb2 import Record
from tests.sim.driver.history import FAILED, OK, PENDING, UNKNOWN, Attempt, History

__all__ = ["check"]

Placed = tuple[int, Record]  # (offset in the committed log, the record there)


def check(history: History, committed: Sequence[Entry]) -> list[str]:
    """Return every violation of the module docstring's rules (empty when all hold)."""
    violations: list[str] = []
    by_tag = _user_records(committed, history, violations)
    for attempt in history.attempts:
        violations.extend(_check_attempt(attempt, by_tag.get(attempt.tag, [])))
    violations.extend(_check_changes(history, committed))
    violations.extend(_check_promotions(history))
    return violations


def _user_records(
    committed: Sequence[Entry], history: History, violations: list[str]
) -> dict[bytes, list[Placed]]:
    """The committed user records grouped by the tag of the attempt that wrote them."""
    tags = {a.tag for a in history.attempts}
    by_tag: dict[bytes, list[Placed]] = {}
    for position, entry in enumerate(committed, 1):
        if entry.index != position:
            violations.append(
                f"stray record: the committed log holds index {entry.index} at position {position}"
            )
            return by_tag
        if base_kind(entry.kind) != EntryKind.DATA:  # a batch's entries but its last continue
            continue
        record = Record.FromString(entry.data)
        if record.offset != entry.index:
            violations.append(
                f"stray record: index {entry.index} holds a record of offset {record.offset}"
            )
        if record.key in tags:
            by_tag.setdefault(record.key, []).append((entry.index, record))
        else:
            violations.append(
                f"stray record: index {entry.index} holds {record.value!r}, which nobody sent"
            )
    return by_tag


def _check_attempt(a: Attempt, placed: list[Placed]) -> Iterator[str]:
    told = _told(a)
    whole = _is_whole(a, placed)
    if placed and not whole:
        yield (
            f"partial batch: {a.describe()} has {len(placed)} of {len(a.values)} records "
            f"committed ({_where(placed)}); the producer was told {told}"
        )
    for offset in (a.offset if a.outcome == OK else None, a.node_offset):
        if offset is not None and not (whole and placed[0][0] == offset):
            yield (
                f"lost ack: {a.describe()} was acknowledged at offset {offset}, but the "
                "committed log "
                f"has {_where(placed) if placed else 'none of its records'}"
            )
    if FAILED in (a.outcome, a.node_outcome) and placed:
        yield (
            f"false not-applied: {a.describe()} was reported certainly not applied "
            f"({a.error if a.outcome == FAILED else a.node_error}), but "
            f"{len(placed)} of its records are committed ({_where(placed)})"
        )
    if a.node_outcome == UNKNOWN and a.led_through and whole and placed[0][1].term == a.term:
        yield (
            f"unacknowledged commit: {a.describe()} is committed ({_where(placed)}) in term "
            f"{a.term}, which node {a.node} led from the submit to its answer, yet it answered "
            f"unknown ({a.node_error})"
        )
    if a.node_outcome == PENDING and whole and a.node_applied >= placed[-1][0]:
        yield (
            f"producer waits forever: {a.describe()} is committed ({_where(placed)}) and node "
            f"{a.node} applied up to {a.node_applied}, but its future is still pending"
        )


def _is_whole(a: Attempt, placed: list[Placed]) -> bool:
    if len(placed) != len(a.values):
        return False
    first = placed[0][0]
    return all(
        offset == first + k and record.value == a.values[k]
        for k, (offset, record) in enumerate(placed)
    )


def _told(a: Attempt) -> str:
    told = a.outcome + (f" ({a.error})" if a.error else "")
    if a.outcome == a.node_outcome or a.node_outcome == PENDING:
        return told
    node = a.node_outcome + (f" ({a.node_error})" if a.node_error else "")
    return f"{told}; the node's future ended {node}"


def _where(placed: list[Placed]) -> str:
    offsets = [offset for offset, _ in placed]
    keys = sorted(int(r.value.rsplit(b"-", 1)[1]) for _, r in placed)
    return f"offsets {offsets[0]}..{offsets[-1]}, records #{keys[0]}..#{keys[-1]}"


def _check_changes(history: History, committed: Sequence[Entry]) -> Iterator[str]:
    for c in history.changes:
        if c.outcome != OK or c.index is None:
            continue
        entry = committed[c.index - 1] if 0 < c.index <= len(committed) else None
        if entry is None:
            yield f"false change success: {_change(c.change)} applied at {c.index} > commit"
            continue
        found = _describe_entry(entry)
        if entry.kind != EntryKind.CONFIG or ConfChange.decode(entry.data)[0] != c.change:
            yield (
                f"false change success: {_change(c.change)} (on node {c.node}) was reported "
                f"applied at index {c.index}, but the committed log holds {found} there"
            )


def _check_promotions(history: History) -> Iterator[str]:
    for p in history.promotions:
        if p.match is None or p.match < 1:
            yield (
                f"premature promotion: node {p.leader} (term {p.term}) proposed promoting learner "
                f"{p.learner} at "
                f"index {p.index} while the learner had acknowledged nothing (match {p.match})"
            )


def _change(change: ConfChange) -> str:
    return f"{change.op.value} {change.node_id}"


def _describe_entry(entry: Entry) -> str:
    if entry.kind == EntryKind.CONFIG:
        change = ConfChange.decode(entry.data)[0]
        return f"another change, {_change(change)} (term {entry.term})"
    names = {EntryKind.DATA: "a data entry", EntryKind.NOOP: "a leader's no-op"}
    kind = base_kind(entry.kind)
    return f"{names.get(kind, f'an entry of kind {entry.kind}')} (term {entry.term})"
