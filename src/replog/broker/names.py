"""Topic names: Kafka's rule, and the topic a request without one addresses."""

from __future__ import annotations

import re

from replog.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_TOPIC",
    "MAX_PARTITIONS",
    "check_partition_count",
    "check_replication_factor",
    "check_topic_name",
]

#: The topic of a request that names none; created with one partition on first start.
DEFAULT_TOPIC = "default"
#: The most partitions one topic may have.
MAX_PARTITIONS = 4096

_LEGAL = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_topic_name(name: object) -> str:
    """``name`` if it is a legal topic name (Kafka's rule: 1 to 249 of ``A-Z a-z 0-9 . _ -``,
    and not ``.`` or ``..``); else InvalidArgumentError saying why."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a topic name must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidArgumentError("a topic name must not be empty")
    if len(name) > 249:
        raise InvalidArgumentError(f"a topic name has at most 249 characters, got {len(name)}")
    if _LEGAL.fullmatch(name) is None:
        raise InvalidArgumentError(
            f"topic name {name!r} may only hold the letters A-Z and a-z, digits, '.', '_' and '-'"
        )
    if name in {".", ".."}:
        raise InvalidArgumentError(f"{name!r} cannot be a topic name")
    return name


def check_partition_count(count: object, *, at_least: int = 1) -> int:
    """``count`` if it is a whole number of partitions from ``at_least`` to MAX_PARTITIONS;
    else InvalidArgumentError."""
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidArgumentError(
            f"a partition count must be an integer, got {type(count).__name__}"
        )
    if not at_least <= count <= MAX_PARTITIONS:
        raise InvalidArgumentError(
            f"a topic has {at_least} to {MAX_PARTITIONS} partitions, got {count}"
        )
    return count


def check_replication_factor(replication_factor: int, nodes: int) -> int:
    """The replication factor to use (0 = as many as there are nodes, at most 3), or
    InvalidArgumentError when it is negative or above the node count."""
    if type(replication_factor) is not int or replication_factor < 0:
        raise InvalidArgumentError(
            f"a replication factor is a whole number, got {replication_factor!r}"
        )
    if replication_factor == 0:
        return min(3, nodes)
    if replication_factor > nodes:
        plural = "node" if nodes == 1 else "nodes"
        raise InvalidArgumentError(
            f"replication factor {replication_factor} is larger than the {nodes} {plural} "
            "of the cluster"
        )
    return replication_factor
