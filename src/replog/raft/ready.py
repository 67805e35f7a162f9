"""The handoff from the core to its driver (etcd's ``Ready``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from replog.raft.messages import Entry, HardState, Message, SnapshotMeta


class Role(Enum):
    """The role a node plays in its current term."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts useful to the driver (who leads); never persisted."""

    leader: int | None
    role: Role


@dataclass(frozen=True, slots=True)
class Ready:
    """Work the driver must perform, **in this order**, before calling ``advance(ready)``:

    1. persist: if ``snapshot`` is set, install it (``storage.apply_snapshot``); then append
       ``entries`` (replacing any stored suffix from their first index); then save
       ``hard_state`` if set. All of it must be durable before step 2;
    2. send ``messages`` (they may depend on what step 1 made durable: votes, acknowledgements);
    3. apply ``committed_entries`` in order (they are durable by now);
    4. call ``raft.advance(ready)``.

    Between ``ready()`` and ``advance()`` the driver may keep feeding the core (``step``,
    ``tick``, ``propose``); whatever that produces comes in the next Ready.
    ``soft_state`` is set when the leader or role changed.
    """

    hard_state: HardState | None
    entries: Sequence[Entry]
    snapshot: SnapshotMeta | None
    messages: Sequence[Message]
    committed_entries: Sequence[Entry]
    soft_state: SoftState | None

    def is_empty(self) -> bool:
        """Return whether there is nothing to do."""
        return not (
            self.hard_state
            or self.entries
            or self.snapshot
            or self.messages
            or self.committed_entries
            or self.soft_state
        )
