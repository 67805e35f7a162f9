"""Who the members are: node ids (strings for users, integers for the core), the persisted
node identity of this data directory, and the replicated id -> address book."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from replog.errors import ConfigError
from replog.raft.log_store import write_atomically
from replog.storage.files import make_private_dir

__all__ = [
    "JOIN_PENDING_FILE",
    "NODE_ID_FILE",
    "AddressBook",
    "clear_join_pending",
    "is_clustered",
    "join_incarnation",
    "join_pending",
    "mark_join_pending",
    "raft_id",
    "resolve_node_id",
]

NODE_ID_FILE = "node-id"
JOIN_PENDING_FILE = "join-pending"
"""Present from the first start of a node with an empty data dir and ``--join`` until the
leader confirmed the join: until then the node asks for a *fresh* join again (even after a
crash that left a state file behind) and neither votes nor campaigns."""


def raft_id(name: str) -> int:
    """The core's integer id for node ``name`` (63 bits of its SHA-256; never 0)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1 or 1


def resolve_node_id(data_dir: str, given: str, fallback: str) -> str:
    """The node's id: the one saved in ``data_dir/node-id`` (written on the first start).

    ``given`` (``--node-id``) must match a saved id: ConfigError otherwise, so a data
    directory is never started under another node's identity. Without a saved id, ``given``
    (else ``fallback``) is saved and used.
    """
    path = Path(data_dir) / NODE_ID_FILE
    if path.exists():
        saved = path.read_text(encoding="utf-8").strip()
        if given and given != saved:
            raise ConfigError(
                f"--node-id {given} does not match the id {saved!r} saved in {path}; "
                "start with that id (or none), or use another --data-dir"
            )
        return saved
    name = given or fallback
    make_private_dir(path.parent)
    write_atomically(path, name.encode() + b"\n")
    return name


def is_clustered(data_dir: str) -> bool:
    """Whether ``data_dir`` holds a replicated node's data."""
    return (Path(data_dir) / "raft-state.json").exists()


def join_pending(data_dir: str) -> bool:
    """Whether a fresh join of this data directory was not yet confirmed by a leader."""
    return (Path(data_dir) / JOIN_PENDING_FILE).exists()


def join_incarnation(data_dir: str) -> str:
    """The token of this data directory's pending fresh join ("" if none is pending)."""
    try:
        return (Path(data_dir) / JOIN_PENDING_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def mark_join_pending(data_dir: str) -> None:
    """Durably note that this (empty) data directory is joining fresh, with a new random
    token naming this incarnation of the node (kept if a join is already pending)."""
    make_private_dir(data_dir)
    if not join_pending(data_dir):
        token = secrets.token_hex(8).encode()
        write_atomically(Path(data_dir) / JOIN_PENDING_FILE, token + b"\n")


def clear_join_pending(data_dir: str) -> None:
    """The leader confirmed the fresh join: this node is an ordinary member from now on."""
    (Path(data_dir) / JOIN_PENDING_FILE).unlink(missing_ok=True)


class AddressBook:
    """Raft id -> (name, address), each address with its epoch (when that node started, by its
    own clock): of two addresses of one node the higher epoch wins, wherever each was learnt.

    Sources: replicated member records (persisted in ``members.json``), what a node says of
    itself in its messages, and the addresses other nodes gossip with theirs. Gossip matters
    when nodes restart on new ports: two of them may each know only the other's old address,
    and the records announcing the new ones need a leader that they are needed to elect.
    """

    def __init__(self, path: Path) -> None:
        """Load the book from ``path`` (empty if missing; loaded addresses have epoch 0)."""
        self.path = path
        self.entries: dict[int, tuple[str, str]] = {}
        self._known: dict[int, tuple[int, str, str]] = {}  # node -> (epoch, name, address)
        if path.exists():
            for name, addr in json.loads(path.read_text(encoding="utf-8")).items():
                self.entries[raft_id(name)] = (name, addr)
                self._known[raft_id(name)] = (0, name, addr)

    def set(self, name: str, addr: str, epoch: int = 0) -> None:
        """Record ``name -> addr`` durably (a replicated member record was applied)."""
        self.learn(name, addr, epoch)
        if self.entries.get(raft_id(name)) == (name, addr):
            return
        self.entries[raft_id(name)] = (name, addr)
        doc = {n: a for n, a in self.entries.values()}
        write_atomically(self.path, json.dumps(doc, sort_keys=True).encode())

    def learn(self, name: str, addr: str, epoch: int) -> None:
        """Take ``addr`` for ``name`` unless an address of a later epoch is known (an equal
        epoch replaces: it is the newer word on the same start)."""
        if not addr:
            return
        node = raft_id(name)
        known = self._known.get(node)
        if known is None or epoch >= known[0]:
            self._known[node] = (epoch, name, addr)

    def gossip(self) -> list[tuple[str, str, int]]:
        """Every (name, address, epoch) known, to pass on to the other nodes."""
        return [(name, addr, epoch) for epoch, name, addr in self._known.values() if epoch]

    def address(self, node: int) -> str | None:
        """Where ``node`` listens: its address of the latest epoch known."""
        known = self._known.get(node)
        if known is not None:
            return known[2]
        entry = self.entries.get(node)
        return entry[1] if entry else None

    def name(self, node: int) -> str:
        """The user-facing id of ``node`` (its number if unknown)."""
        entry = self.entries.get(node)
        return entry[0] if entry else str(node)
