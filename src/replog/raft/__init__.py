"""Raft consensus for replog, as a pure state machine (sans I/O).

Feed a :class:`Raft` ticks, peer messages and proposals; collect a :class:`Ready` with what to
persist, send and apply; perform it in the documented order; call ``advance``.
"""

from replog.raft.config import RaftConfig, RandomSource
from replog.raft.core import Raft
from replog.raft.errors import CompactedError, ConfChangeError, NotLeaderError, RaftError
from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import (
    CONTINUES,
    Entry,
    EntryKind,
    HardState,
    Membership,
    Message,
    MessageType,
    SnapshotMeta,
)
from replog.raft.ready import Ready, Role, SoftState
from replog.raft.storage import MemoryRaftStorage, RaftLogStore, RaftStorage

__all__ = [
    "CONTINUES",
    "CompactedError",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeOp",
    "Entry",
    "EntryKind",
    "HardState",
    "Membership",
    "MemoryRaftStorage",
    "Message",
    "MessageType",
    "NotLeaderError",
    "Raft",
    "RaftConfig",
    "RaftError",
    "RaftLogStore",
    "RaftStorage",
    "RandomSource",
    "Ready",
    "Role",
    "SnapshotMeta",
    "SoftState",
]
