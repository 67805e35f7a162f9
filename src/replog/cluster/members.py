"""Who the members are: node ids (strings for users, integers for the core), the persisted
node identity of this data directory, and the replicated id -> address book."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path

from replog.errors import ConfigError
from replog.storage.atomic import write_atomically
from replog.storage.files import make_private_dir

__all__ = [
    "CLUSTER_ID_FILE",
    "JOIN_PENDING_FILE",
    "NODE_ID_FILE",
    "START_EPOCH_FILE",
    "AddressBook",
    "clear_join_pending",
    "is_clustered",
    "load_cluster_id",
    "join_incarnation",
    "join_pending",
    "kafka_broker_id",
    "mark_join_pending",
    "next_start_epoch",
    "raft_id",
    "raise_start_epoch",
    "resolve_node_id",
    "save_cluster_id",
]

NODE_ID_FILE = "node-id"
JOIN_PENDING_FILE = "join-pending"
"""Present from the first start of a node with an empty data dir and ``--join`` until the
leader confirmed the join: until then the node asks for a *fresh* join again (even after a
crash that left a state file behind) and neither votes nor campaigns."""
CLUSTER_ID_FILE = "cluster-id"
"""The id of the cluster this data directory belongs to: drawn by the bootstrapping node,
learnt from the leader's answer by a joiner (saved before its join counts as confirmed)."""


START_EPOCH_FILE = "start-epoch"
"""The epoch of this data directory's latest start (a counter, see ``next_start_epoch``)."""


def raft_id(name: str) -> int:
    """The core's integer id for node ``name`` (63 bits of its SHA-256; never 0)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1 or 1


_KAFKA_ID_MAX = 2**31 - 1


def kafka_broker_id(name: str) -> int:
    """Node ``name``'s Kafka broker id (a positive int32): the name itself when it is a
    decimal number in range (``--node-id 3`` is broker 3, as Kafka users number brokers),
    else the top 31 bits of its Raft id. A function of the name alone, so it is the same
    on every node and across restarts (the name is saved in ``node-id``)."""
    if name.isascii() and name.isdigit() and 0 < int(name) <= _KAFKA_ID_MAX:
        return int(name)
    return (raft_id(name) >> 32) or 1


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


def load_cluster_id(data_dir: str, *, bootstrap: bool = False) -> str | None:
    """The id of this data directory's cluster; None while it is not known (a fresh joiner
    before the leader answered); "" for a cluster created before cluster ids existed. A
    brand-new data directory with ``bootstrap`` draws (and saves) a new id."""
    path = Path(data_dir) / CLUSTER_ID_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    clustered = is_clustered(data_dir)
    if bootstrap and not clustered:
        return save_cluster_id(data_dir, secrets.token_hex(16))
    return "" if clustered and not join_pending(data_dir) else None


def save_cluster_id(data_dir: str, cluster_id: str) -> str:
    """Durably record that this data directory belongs to ``cluster_id``; return it."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    write_atomically(Path(data_dir) / CLUSTER_ID_FILE, cluster_id.encode() + b"\n")
    return cluster_id


def next_start_epoch(data_dir: str) -> int:
    """This start's address epoch: one above the last one saved in ``start-epoch`` (1 on the
    first start), saved durably before it is returned, so every start of a data directory
    carries a higher epoch than any earlier one, whatever the wall clock says."""
    saved = _saved_epoch(data_dir)
    epoch = saved + 1
    if not saved and is_clustered(data_dir):
        # A data directory of the build whose epochs were the start's wall-clock time (ns):
        # its log's member records carry such epochs, so this once, count on from the clock.
        epoch = max(epoch, time.time_ns())
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    write_atomically(Path(data_dir) / START_EPOCH_FILE, b"%d\n" % epoch)
    return epoch


def raise_start_epoch(data_dir: str, epoch: int) -> None:
    """The leader gave this start ``epoch`` (above what this data directory counted, as for
    a wiped node): save it, so the next start counts on from it."""
    if epoch > _saved_epoch(data_dir):
        write_atomically(Path(data_dir) / START_EPOCH_FILE, b"%d\n" % epoch)


def _saved_epoch(data_dir: str) -> int:
    path = Path(data_dir) / START_EPOCH_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return 0
    if not text.isdigit():
        raise ConfigError(f"{path} does not hold an epoch (a number); restore or delete it")
    return int(text)


def clear_join_pending(data_dir: str) -> None:
    """The leader confirmed the fresh join: this node is an ordinary member from now on."""
    (Path(data_dir) / JOIN_PENDING_FILE).unlink(missing_ok=True)


class AddressBook:
    """Raft id -> (name, address), each address with its epoch (which start of that node it
    is, see ``next_start_epoch``): of two addresses of one node the higher epoch wins,
    wherever each was learnt.

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

    def epoch_for(self, name: str, addr: str, epoch: int) -> int:
        """The epoch to give ``addr``, which ``name`` announces as of ``epoch``: ``epoch`` if
        it beats every address known of that node (or repeats the latest one), else one above
        the latest known (a wiped node counts from 1 again)."""
        known = self._known.get(raft_id(name))
        if known is None or epoch > known[0] or (epoch, addr) == (known[0], known[2]):
            return epoch
        return known[0] + 1

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
        """The user-facing id of ``node``: from the replicated book, else as learnt (a join's
        answer, a peer's own word or gossip); its number only if never heard of."""
        entry = self.entries.get(node)
        if entry:
            return entry[0]
        known = self._known.get(node)
        return known[1] if known else str(node)
