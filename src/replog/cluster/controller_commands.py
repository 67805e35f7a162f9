"""The controller's metadata commands and their stable bytes encoding.

A command is what the controller group's log carries (entry kind ``METADATA_RECORD_TYPE``):
every replica decodes the same bytes into the same command and applies it
(``replog.cluster.controller.apply``). The encoding is canonical JSON (sorted keys, no
spaces, ASCII) with a format version ``v``: the same command always gives the same bytes,
whatever order a caller built its dicts in.

A version this node does not know is refused with UnsupportedError and never skipped: a
replica that skipped a command would diverge from the others, so the host must stop
applying (and be upgraded) instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, get_type_hints

from replog.errors import InvalidArgumentError, UnsupportedError

__all__ = [
    "COMMAND_VERSION",
    "METADATA_RECORD_TYPE",
    "AlterTopicConfig",
    "Command",
    "CompleteReassignment",
    "CreatePartitions",
    "CreateTopic",
    "DecommissionNode",
    "DeleteTopic",
    "ReassignPartition",
    "RegisterNode",
    "SetHttpAddress",
    "SetKafkaAddress",
    "decode",
]

#: The Raft entry kind of a metadata command in the controller group (application kinds
#: start at 3, taken by member entries; see ``replog.raft.messages.EntryKind``).
METADATA_RECORD_TYPE = 4
#: The encoding version this node writes and the only one it reads.
COMMAND_VERSION = 1
#: A command's encoding is small; anything bigger is not one of ours.
_MAX_COMMAND_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Base:
    """Shared encoding; ``kind`` names the command in its encoding (never renamed)."""

    kind: ClassVar[str] = ""

    def encode(self) -> bytes:
        """The command's canonical bytes (same command, same bytes)."""
        body: dict[str, Any] = {"v": COMMAND_VERSION, "type": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            body[f.name] = value
        return canonical_json(body)


@dataclass(frozen=True, slots=True)
class RegisterNode(_Base):
    """Node ``node_id`` is a voter of the cluster, reachable at ``address`` (registering a
    known node again updates its address and keeps its state)."""

    kind: ClassVar[str] = "register_node"
    node_id: str
    address: str


@dataclass(frozen=True, slots=True)
class SetKafkaAddress(_Base):
    """Node ``node_id``'s Kafka listener is reached at ``address`` (``HOST:PORT``, what
    Kafka clients are told); "" says it runs none. Each node proposes its own, so every
    node can answer Kafka's Metadata and FindCoordinator with every node's listener."""

    kind: ClassVar[str] = "set_kafka_address"
    node_id: str
    address: str


@dataclass(frozen=True, slots=True)
class SetHttpAddress(_Base):
    """Node ``node_id``'s HTTP API is reached at ``address`` (``HOST:PORT``, what HTTP
    clients are told in ``Replog-Leader``); "" says it has not said. Each node proposes its
    own, so any node can name another's HTTP address when it refuses a request."""

    kind: ClassVar[str] = "set_http_address"
    node_id: str
    address: str


@dataclass(frozen=True, slots=True)
class DecommissionNode(_Base):
    """Move every replica off ``node_id``: it stops taking new replicas at once, and each
    partition holding it gets a target replica set without it."""

    kind: ClassVar[str] = "decommission_node"
    node_id: str


@dataclass(frozen=True, slots=True)
class CreateTopic(_Base):
    """Create topic ``name`` of ``partitions`` partitions with ``replication_factor``
    replicas each, ``config`` overriding the defaults (keys as TopicConfig takes them)."""

    kind: ClassVar[str] = "create_topic"
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeleteTopic(_Base):
    """Delete topic ``name`` and, on every replica, its partitions."""

    kind: ClassVar[str] = "delete_topic"
    name: str


@dataclass(frozen=True, slots=True)
class AlterTopicConfig(_Base):
    """Set the keys of ``set`` and reset those of ``delete`` to the defaults."""

    kind: ClassVar[str] = "alter_topic_config"
    name: str
    set: Mapping[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CreatePartitions(_Base):
    """Grow topic ``name`` to ``count`` partitions (a total, as Kafka's; never shrinks)."""

    kind: ClassVar[str] = "create_partitions"
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class ReassignPartition(_Base):
    """Move partition ``partition`` of ``topic`` to ``replicas`` (preferred leader first):
    records the target; the host moves the replicas and then proposes
    CompleteReassignment. Naming the current replicas cancels a move in progress."""

    kind: ClassVar[str] = "reassign_partition"
    topic: str
    partition: int
    replicas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompleteReassignment(_Base):
    """The group of partition ``partition`` of ``topic`` (the topic of id ``topic_id``) now
    has ``replicas`` as its members: the target becomes the replica set. Refused if the
    target changed meanwhile (another move, or the topic was deleted and re-created)."""

    kind: ClassVar[str] = "complete_reassignment"
    topic: str
    partition: int
    topic_id: int
    replicas: tuple[str, ...]


Command = (
    RegisterNode
    | SetKafkaAddress
    | SetHttpAddress
    | DecommissionNode
    | CreateTopic
    | DeleteTopic
    | AlterTopicConfig
    | CreatePartitions
    | ReassignPartition
    | CompleteReassignment
)

_COMMANDS: dict[str, type[_Base]] = {
    cls.kind: cls
    for cls in (
        RegisterNode,
        SetKafkaAddress,
        SetHttpAddress,
        DecommissionNode,
        CreateTopic,
        DeleteTopic,
        AlterTopicConfig,
        CreatePartitions,
        ReassignPartition,
        CompleteReassignment,
    )
}


def canonical_json(value: object) -> bytes:
    """``value`` as canonical JSON bytes: sorted keys, no spaces, ASCII only."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    """The JSON object ``data`` holds, or InvalidArgumentError saying it is no ``what``."""
    if len(data) > _MAX_COMMAND_BYTES * 64:
        raise InvalidArgumentError(f"a {what} of {len(data)} bytes is too large")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgumentError(f"not a {what}: the bytes are not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidArgumentError(f"not a {what}: expected a JSON object")
    return body


def check_version(body: Mapping[str, Any], what: str, known: int) -> None:
    """UnsupportedError unless ``body["v"]`` is the version ``known``."""
    version = body.get("v")
    if type(version) is not int or version != known:
        raise UnsupportedError(
            f"this node reads {what} version {known}, not {version!r}: "
            "upgrade it before it applies this cluster's metadata"
        )


def decode(data: bytes) -> Command:
    """The command ``data`` encodes. UnsupportedError for an unknown encoding version;
    InvalidArgumentError for bytes that are no command (unknown type, missing or
    mistyped fields)."""
    if len(data) > _MAX_COMMAND_BYTES:
        raise InvalidArgumentError(f"a metadata command of {len(data)} bytes is too large")
    body = parse_json(data, "metadata command")
    check_version(body, "metadata commands", COMMAND_VERSION)
    kind = body.get("type")
    cls = _COMMANDS.get(kind) if isinstance(kind, str) else None
    if cls is None or not isinstance(kind, str):
        raise InvalidArgumentError(f"unknown metadata command type {kind!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    extra = sorted(set(body) - {"v", "type", *names})
    if extra:
        raise InvalidArgumentError(f"metadata command {kind} has unknown fields {extra}")
    values: dict[str, object] = {}
    for name in names:
        if name not in body:
            raise InvalidArgumentError(f"metadata command {kind} lacks the field {name!r}")
        values[name] = _field(kind, name, hints[name], body[name])
    return cls(**values)  # type: ignore[return-value]


def _field(kind: str, name: str, hint: object, value: object) -> object:
    """``value`` checked against a field's type (str, int, tuple of str, map str -> str)."""
    if hint is str and isinstance(value, str):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        hint == tuple[str, ...]
        and isinstance(value, list)
        and all(isinstance(item, str) for item in value)
    ):
        return tuple(value)
    if (
        hint == Mapping[str, str]
        and isinstance(value, dict)
        and all(isinstance(item, str) for item in value.values())
    ):
        return dict(value)
    raise InvalidArgumentError(f"metadata command {kind}: field {name!r} has the wrong type")
