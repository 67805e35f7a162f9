"""``replog.Consumer`` on a 3-node cluster: the client finds each group's coordinator by
following the nodes' hints; 3 consumers share 12 partitions 4 each; a closed one's
partitions move within 1 s; and every produced record is processed (at least once, no gap)
across a consumer crash and the coordinator's crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from replog.client import Client, Consumer, ConsumerRecord
from replog.errors import ReplogError
from tests.cluster.conftest import Cluster, wait_until
from tests.cluster.test_consumer_groups_on_a_cluster import coordinator

TOPIC = "orders"
ALL = {(TOPIC, p) for p in range(12)}


class Member:
    """A consumer processing records on a thread of its own, noting each one."""

    def __init__(self, client: Client, **options: Any) -> None:
        self.consumer = Consumer(client, "billing", [TOPIC], **options)
        self.seen: list[ConsumerRecord] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop_polling(self) -> None:
        self.running = False
        self.thread.join(10)

    def _run(self) -> None:
        while self.running:
            record = self.consumer.poll(0.1)
            if record is not None:
                self.seen.append(record)

    def stop(self, *, crash: bool = False) -> None:
        self.stop_polling()
        if crash:
            self.consumer._halt()  # no commit, no leave: its session expires
        else:
            self.consumer.close()


@pytest.fixture
def client(three: Cluster) -> Iterator[Client]:
    with Client([n.grpc_address for n in three.nodes], timeout=10) as made:
        made.create_topic(TOPIC, 12, replication_factor=3)
        yield made


@pytest.fixture
def members() -> Iterator[list[Member]]:
    made: list[Member] = []
    yield made
    for member in made:
        if member.running:
            member.stop()


def _sent(client: Client, i: int) -> bool:
    try:
        client.produce(b"%d" % i, topic=TOPIC, partition=i % 12)
    except ReplogError:
        return False
    return True


def _union(members: list[Member]) -> set[tuple[str, int]]:
    return set().union(*(m.consumer.assignment() for m in members))


def test_three_consumers_share_twelve_partitions_and_a_closed_ones_move_within_1s(
    client: Client, members: list[Member]
) -> None:
    members.extend(Member(client) for _ in range(3))
    wait_until(lambda: [len(m.consumer.assignment()) for m in members] == [4, 4, 4], 30, "4 each")
    assert _union(members) == ALL
    members[0].stop_polling()
    closed_at = time.monotonic()
    members[0].consumer.close()
    rest = members[1:]
    wait_until(lambda: _union(rest) == ALL, 10, "the closed member's partitions moved")
    assert time.monotonic() - closed_at < 1.0
    assert not rest[0].consumer.assignment() & rest[1].consumer.assignment()


def test_every_record_is_processed_across_a_consumer_crash_and_the_coordinators_crash(
    three: Cluster, client: Client, members: list[Member]
) -> None:
    options = {"auto_offset_reset": "earliest", "session_timeout_ms": 3000,
               "auto_commit_interval_ms": 300}  # fmt: skip
    members.extend(Member(client, **options) for _ in range(2))
    wait_until(lambda: _union(members) == ALL, 30, "the partitions shared")

    def produce(start: int, count: int) -> None:
        for i in range(start, start + count):
            # a send whose outcome a crash left unknown is sent again (duplicates are fine:
            # the check is on the set of values)
            wait_until(lambda i=i: _sent(client, i), 30, f"record {i} acknowledged")

    def processed() -> set[int]:
        return {int(r.value) for m in members for r in m.seen}

    produce(0, 240)
    wait_until(lambda: len(processed()) >= 120, 30, "some processed")
    members[0].stop(crash=True)
    produce(240, 240)
    wait_until(lambda: len(members[1].consumer.assignment()) == 12, 30, "the crashed one's share")
    coordinator(three.nodes, "billing").stop_without_hand_over()
    produce(480, 240)
    wait_until(lambda: processed() == set(range(720)), 60, "every record processed")
    # the group's commits cover every record read: a successor would not read them again
    members[1].consumer.commit()
    last: dict[tuple[str, int], int] = {}
    for record in members[1].seen:
        tp = (record.topic, record.partition)
        last[tp] = max(last.get(tp, -1), record.offset)
    committed = client.fetch_offsets("billing")
    assert all(committed[tp] > offset for tp, offset in last.items())


def test_list_groups_merges_every_coordinators_groups_and_delete_finds_each_coordinator(
    three: Cluster, client: Client
) -> None:
    names = [f"team-{i}" for i in range(12)]  # murmur2 spreads them over the 8 partitions
    for name in names:
        client.commit_offsets(name, {(TOPIC, 0): 1})
    coordinators = {coordinator(three.nodes, name).name for name in names}
    assert len(coordinators) > 1  # else the fan-out is not what is being checked
    assert [g.group for g in client.list_groups()] == sorted(names)
    for name in names[:6]:
        client.delete_group(name)
    assert [g.group for g in client.list_groups()] == sorted(names[6:])
