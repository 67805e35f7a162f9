"""One-line, human-readable renderings of entries, messages and Readies (logs and tests)."""

from __future__ import annotations

from collections.abc import Iterable

from replog.raft.messages import (
    CONTINUES,
    Entry,
    EntryKind,
    Membership,
    Message,
    MessageType,
    base_kind,
)
from replog.raft.ready import Ready

_CORE_KINDS = frozenset(EntryKind)


def describe_entry(entry: Entry) -> str:
    """Render ``[t<term> i<index>] KIND data`` (data only for user and config entries); a
    ``+`` after the kind marks an entry whose proposal continues (CONTINUES)."""
    base = base_kind(entry.kind)
    kind = EntryKind(base).name if base in _CORE_KINDS else f"KIND{base}"
    if entry.kind & CONTINUES:
        kind += "+"
    head = f"[t{entry.term} i{entry.index}] {kind}"
    if entry.kind == EntryKind.NOOP:
        return head
    return f"{head} {entry.data.decode(errors='backslashreplace')!r}"


def describe_membership(config: Membership) -> str:
    """Render ``voters=1,2,3 learners=4``."""
    voters = ",".join(map(str, sorted(config.voters)))
    learners = ",".join(map(str, sorted(config.learners)))
    return f"voters=({voters}) learners=({learners})"


def describe_message(m: Message) -> str:
    """Render a message with only the fields that matter for its type."""
    head = f"{m.src}->{m.dst} {m.type.name} term={m.term}"
    t = m.type
    if t in (MessageType.VOTE, MessageType.PRE_VOTE):
        tail = f" last=[t{m.log_term} i{m.index}]" + (" transfer" if m.transfer else "")
    elif t is MessageType.APP:
        ents = ", ".join(describe_entry(e) for e in m.entries)
        tail = f" prev=[t{m.log_term} i{m.index}] commit={m.commit} entries=[{ents}]"
    elif t is MessageType.APP_RESP:
        tail = f" index={m.index}"
        if m.reject:
            tail += f" REJECT hint=[t{m.log_term} i{m.reject_hint}]"
            tail += " lost-entries" if m.lost_entries else ""
    elif t is MessageType.HEARTBEAT:
        tail = f" commit={m.commit}"
    elif t is MessageType.SNAPSHOT and m.snapshot is not None:
        snap = m.snapshot
        tail = f" snap=[t{snap.term} i{snap.index}] {describe_membership(snap.config)}"
    else:
        tail = " REJECT" if m.reject else ""
    return head + tail


def describe_ready(rd: Ready) -> list[str]:
    """Render a Ready as indented lines, in the order the driver performs it."""
    lines: list[str] = []
    if rd.soft_state is not None:
        lead = rd.soft_state.leader
        lines.append(f"State: {rd.soft_state.role.value} lead={lead}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        lines.append(
            f"HardState term={hs.term} vote={hs.vote} commit={hs.commit} "
            f"{describe_membership(hs.config)}"
        )
    if rd.snapshot is not None:
        snap = rd.snapshot
        lines.append(f"Snapshot [t{snap.term} i{snap.index}] {describe_membership(snap.config)}")
    _section(lines, "Entries:", (describe_entry(e) for e in rd.entries))
    _section(lines, "Messages:", (describe_message(m) for m in rd.messages))
    _section(lines, "Committed:", (describe_entry(e) for e in rd.committed_entries))
    return lines


def _section(lines: list[str], title: str, items: Iterable[str]) -> None:
    rendered = list(items)
    if rendered:
        lines.append(title)
        lines.extend("  " + item for item in rendered)
