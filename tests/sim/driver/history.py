"""What the clients and the operator asked and were told (a Jepsen-style history).

Every produce *attempt* is one ``RaftNode.submit`` of a batch; a client retries a batch after a
failed or unknown outcome with the same values, as real clients do. Each record of an attempt
carries the attempt's tag as its key, so the checker can tell which attempt put which copy of
a batch in the log (the values say which batch; the key says which attempt).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replog.raft.membership import ConfChange

OK = "ok"
FAILED = "failed"  # the node said: certainly not applied
UNKNOWN = "unknown"
PENDING = "pending"
LOST = "lost"  # the node crashed: its future died with the process


@dataclass(slots=True)
class Attempt:
    """One submit of a batch: the client's view and, at the end, the node future's."""

    id: int
    client: int
    batch: int
    values: tuple[bytes, ...]
    node: int
    incarnation: int
    invoked_s: float
    outcome: str = PENDING  # what the client concluded (a timeout makes it unknown)
    offset: int | None = None
    error: str = ""
    term: int = 0  # the term the serving node led when it accepted the submit (0: it did not)
    node_outcome: str = PENDING  # how the node's future ended: ok / failed / unknown / pending
    node_offset: int | None = None
    node_error: str = ""
    led_through: bool = False  # the node still led ``term`` when its future ended
    node_applied: int = 0  # a pending future's node: its last applied index at the end

    @property
    def tag(self) -> bytes:
        """The key every record of this attempt carries."""
        return b"a%d" % self.id

    def describe(self) -> str:
        """A short name: ``attempt 12 (client 1, batch 3, 20 records, node 2)``."""
        return (
            f"attempt {self.id} (client {self.client}, batch {self.batch}, "
            f"{len(self.values)} record{'' if len(self.values) == 1 else 's'}, node {self.node})"
        )


@dataclass(slots=True)
class ChangeAttempt:
    """One ``RaftNode.propose_change`` call by the operator."""

    id: int
    change: ConfChange
    node: int
    invoked_s: float
    outcome: str = PENDING
    index: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Promotion:
    """A leader proposed promoting ``learner``; ``match`` is what its progress said then."""

    leader: int
    term: int
    index: int
    learner: int
    match: int | None


@dataclass(slots=True)
class History:
    """Everything the checker judges besides the final committed log."""

    attempts: list[Attempt] = field(default_factory=list)
    changes: list[ChangeAttempt] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many attempts ended each way (the client's view)."""
        result: dict[str, int] = {}
        for a in self.attempts:
            result[a.outcome] = result.get(a.outcome, 0) + 1
        return result
