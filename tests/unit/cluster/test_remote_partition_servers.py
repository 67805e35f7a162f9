"""``RemotePartition.servers``: on a node without a replica of the partition, the leader
marked is the partition's (as its replicas said), never the controller group's: the group
coordinator of an offsets partition hosted elsewhere is found from it."""

from __future__ import annotations

from typing import Any

from replog.api.backend import ServerInfo
from replog.cluster.remote import RemotePartition

ADDRS = {"n1": "127.0.0.1:1", "n2": "127.0.0.1:2", "n3": "127.0.0.1:3", "n4": "127.0.0.1:4"}


def _servers() -> list[ServerInfo]:
    # n1 leads the controller group; the partition lives on n2, n3, n4
    return [ServerInfo(n, a, is_leader=n == "n1") for n, a in ADDRS.items()]


def _remote(leader: str, last: dict[tuple[str, int], str] | None = None) -> RemotePartition:
    forwarder: Any = object()
    return RemotePartition(
        "__consumer_offsets",
        3,
        ["n2", "n3", "n4"],
        address_of=ADDRS.get,
        forwarder=forwarder,
        servers=_servers,
        last_leader=last if last is not None else {},
        leader_of=lambda topic, partition: (
            leader if (topic, partition) == ("__consumer_offsets", 3) else ""
        ),
    )


def _leaders(remote: RemotePartition) -> list[str]:
    return [s.id for s in remote.servers() if s.is_leader]


def test_the_partitions_leader_is_marked_as_its_replicas_name_it() -> None:
    assert _leaders(_remote("n3")) == ["n3"]


def test_no_leader_is_marked_when_none_is_known_not_the_controllers() -> None:
    assert _leaders(_remote("")) == []


def test_the_address_that_accepted_the_last_forward_stands_in_when_no_replica_said() -> None:
    last = {("__consumer_offsets", 3): "127.0.0.1:4"}
    assert _leaders(_remote("", last)) == ["n4"]
    assert [s.id for s in _remote("", last).servers()] == ["n1", "n2", "n3", "n4"]
