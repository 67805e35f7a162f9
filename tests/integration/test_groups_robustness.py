"""Consumer groups under stress: compaction, failover of the coordinator's state, long
catch-ups, malformed records and concurrent writes never lose a member, an epoch or an
offset (regressions of a review; each failed on the code before its fix)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.broker.assignors import TopicPartition
from replog.broker.group_log import OFFSETS_TOPIC, commit_record, start_record
from replog.broker.partitioner import murmur2, to_positive
from replog.v1 import admin_pb2, group_pb2
from tests.integration.conftest import ThreadedServer, wait_until
from tests.integration.test_groups_service import (
    beat,
    commit,
    fetched,
    join,
    owned,
)


def offsets_partition(admin: Any) -> Any:
    return admin.DescribeTopic(
        admin_pb2.DescribeTopicRequest(name=OFFSETS_TOPIC), timeout=10
    ).topic.partitions[0]


def generation(groups: Any, group: str) -> int:
    answer = groups.DescribeGroup(group_pb2.DescribeGroupRequest(group=group), timeout=10)
    return int(answer.group.generation)


# -- 1. compaction forgets every member -------------------------------------------------------


def test_a_compaction_of_the_offsets_partition_keeps_the_members_of_its_groups(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    # Retention 2 s: the maintainer compacts every 0.5 s. The member heartbeats every 50 ms,
    # far inside its 30 s session, so nothing may ever call it unknown.
    server = server_factory(offsets_topic_partitions=1, offsets_retention_ms=2000)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=2), timeout=10)
    answer = join(groups, "g", ["orders"])
    shard = server.agent.groups._shards[0]
    first_start = shard.incarnation
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        answer = beat(groups, "g", answer)  # raises UNKNOWN_MEMBER_ID on main
        time.sleep(0.05)
    assert shard.incarnation != first_start  # a compaction did run meanwhile


# -- 2. epochs handed out but never recorded ----------------------------------------------------


def test_an_epoch_bumped_by_new_partitions_is_recorded_before_a_member_is_given_it(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    tmp_path: Path,
) -> None:
    server = server_factory(tmp_path / "d", offsets_topic_partitions=1)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="t", partitions=1), timeout=10)
    answer = beat(groups, "g", join(groups, "g", ["t"]))
    admin.CreatePartitions(admin_pb2.CreatePartitionsRequest(name="t", count=2), timeout=10)
    state = {"answer": answer}

    def grown() -> bool:
        state["answer"] = beat(groups, "g", state["answer"])
        return owned(state["answer"]) == {("t", 0), ("t", 1)}

    wait_until(grown, 10, "the new partition assigned")
    handed_out = state["answer"].member_epoch
    server.stop()
    groups, _ = stub_for(server_factory(tmp_path / "d", offsets_topic_partitions=1))
    # A new coordinator starts at the last recorded epoch: it must not hand out again an
    # epoch the old one already gave with another assignment.
    assert generation(groups, "g") >= handed_out


def test_an_epoch_bumped_by_an_expired_session_is_recorded_before_a_member_is_given_it(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    tmp_path: Path,
) -> None:
    server = server_factory(tmp_path / "d", offsets_topic_partitions=1)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="t", partitions=2), timeout=10)
    short = groups.Heartbeat(
        group_pb2.GroupHeartbeatRequest(
            group="g",
            member_epoch=0,
            subscription=group_pb2.Subscription(topics=["t"]),
            session_timeout_ms=300,
        ),
        timeout=10,
    )
    assert short.member_id
    stays = join(groups, "g", ["t"])
    state = {"answer": stays}

    def took_all() -> bool:  # the short member expires; the other gets both partitions
        state["answer"] = beat(groups, "g", state["answer"])
        return owned(state["answer"]) == {("t", 0), ("t", 1)}

    wait_until(took_all, 10, "the expired member's partitions reassigned")
    handed_out = state["answer"].member_epoch
    server.stop()
    groups, _ = stub_for(server_factory(tmp_path / "d", offsets_topic_partitions=1))
    assert generation(groups, "g") >= handed_out


# -- 3. the offsets topic's layout and retention can change under the groups ---------------------


def _group_on(partition: int, count: int) -> str:
    return next(
        name
        for name in (f"g{i}" for i in range(1000))
        if to_positive(murmur2(name.encode())) % count == partition
    )


def test_growing_the_offsets_topic_is_refused_so_committed_offsets_stay_found(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    tmp_path: Path,
) -> None:
    server = server_factory(tmp_path / "d", offsets_topic_partitions=1)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=1), timeout=10)
    group = _group_on(1, 2)  # partition 0 of 1 now; partition 1 once there are 2
    commit(groups, group, "", 0, {0: 7})
    try:
        admin.CreatePartitions(
            admin_pb2.CreatePartitionsRequest(name=OFFSETS_TOPIC, count=2), timeout=10
        )
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    server.stop()
    groups, _ = stub_for(server_factory(tmp_path / "d", offsets_topic_partitions=1))
    assert fetched(groups, group) == {("orders", 0): 7}


def test_a_longer_offsets_retention_setting_never_lets_the_old_topic_retention_delete_offsets(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    short = {"offsets_topic_partitions": 1, "offsets_retention_ms": 2000}
    server = server_factory(data, **short, retention_check_interval_ms=100)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=1), timeout=10)
    commit(groups, "g", "", 0, {0: 7})
    server.stop()
    # The operator lengthens the retention (60 s: compaction every 15 s).
    longer = {"offsets_topic_partitions": 1, "offsets_retention_ms": 60_000}
    server = server_factory(data, **longer, retention_check_interval_ms=100)
    groups, admin = stub_for(server)
    assert fetched(groups, "g") == {("orders", 0): 7}  # activated: copied forward once
    end = offsets_partition(admin).next_offset
    time.sleep(3.0)  # well inside the new 60 s retention: nothing live may go
    lowest = offsets_partition(admin).lowest_offset
    server.stop()
    groups, _ = stub_for(server_factory(data, **longer))
    assert fetched(groups, "g") == {("orders", 0): 7}, f"front deleted up to {lowest} of {end}"


# -- 4. a copy record over max_record_bytes: compaction never completes -----------------------


def test_a_group_whose_offsets_add_up_to_a_large_record_does_not_cost_other_groups_offsets(
    server_factory: Callable[..., ThreadedServer],
    stub_for: Callable[[ThreadedServer], Any],
    tmp_path: Path,
) -> None:
    settings = {
        "offsets_topic_partitions": 1,
        "offsets_retention_ms": 2000,
        "retention_check_interval_ms": 100,
    }
    server = server_factory(tmp_path / "d", **settings)
    groups, admin = stub_for(server)
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=400), timeout=10)
    big = "x" * 4000  # the longest metadata allowed, on 400 partitions: 1.6 MB in all
    groups.CommitOffsets(
        group_pb2.CommitOffsetsRequest(
            group="a-big",
            offsets=[
                group_pb2.OffsetCommit(topic="orders", partition=p, offset=1, metadata=big)
                for p in range(400)
            ],
        ),
        timeout=10,
    )
    commit(groups, "z-small", "", 0, {0: 7})
    end = offsets_partition(admin).next_offset
    wait_until(lambda: offsets_partition(admin).lowest_offset >= end, 20, "the front deleted")
    server.stop()
    groups, _ = stub_for(server_factory(tmp_path / "d", **settings))
    assert fetched(groups, "z-small") == {("orders", 0): 7}
    assert len(fetched(groups, "a-big")) == 400


def test_metadata_over_the_limit_is_refused_and_nothing_is_committed(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    groups, admin = stub_for(server_factory(offsets_topic_partitions=1))
    admin.CreateTopic(admin_pb2.CreateTopicRequest(name="orders", partitions=2), timeout=10)
    request = group_pb2.CommitOffsetsRequest(
        group="g",
        offsets=[
            group_pb2.OffsetCommit(topic="orders", partition=0, offset=1),
            group_pb2.OffsetCommit(topic="orders", partition=1, offset=1, metadata="x" * 4097),
        ],
    )
    with pytest.raises(grpc.RpcError) as info:
        groups.CommitOffsets(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fetched(groups, "g") == {}


# -- 5. the reader starves the event loop while catching up -------------------------------------


def test_the_offsets_reader_lets_other_tasks_run_while_it_catches_up_on_a_long_partition(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory(offsets_topic_partitions=1)
    service = server.agent.groups

    async def scenario() -> list[int]:
        await service._offsets_partitions()  # makes the topic
        backend = server.agent.topics.partition(OFFSETS_TOPIC, 0)
        await backend.submit([start_record("old")])
        for i in range(20):  # 20 000 commits of a busy group
            rows = [commit_record("old", "g", [("t", 0, i * 1000 + j, "")]) for j in range(1000)]
            await backend.submit(rows)
        shard = service._shard_of(0)
        seen: list[int] = []
        done = False

        async def ticker() -> None:
            while not done:
                seen.append(shard.state.next_offset)
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        await shard.ready()
        done = True
        await task
        return seen

    seen = server.call(scenario())
    midway = [n for n in seen if 0 < n < 20_000]
    assert midway, "no other task ran while 20 000 records were applied"


# -- 6. memory: a group object kept for every name ever looked up ---------------------------------


def test_describing_groups_that_do_not_exist_keeps_nothing_in_memory(
    server_factory: Callable[..., ThreadedServer], stub_for: Callable[[ThreadedServer], Any]
) -> None:
    server = server_factory(offsets_topic_partitions=1)
    groups, _ = stub_for(server)
    for i in range(200):
        with pytest.raises(grpc.RpcError) as info:
            groups.DescribeGroup(group_pb2.DescribeGroupRequest(group=f"nope-{i}"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    kept = sum(len(s.groups) for s in server.agent.groups._shards.values())
    assert kept == 0


# -- 7. a member that joins while a new coordinator copies the state forward is forgotten --------


def test_a_member_that_joins_while_the_coordinator_copies_its_state_forward_stays_a_member(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory(offsets_topic_partitions=1)
    service = server.agent.groups

    async def scenario() -> None:
        await service.list_groups()  # makes the topic (and activates the shard once)
        await server.agent.topics.create_topic("t", 1, 1, {})
        backend = server.agent.topics.partition(OFFSETS_TOPIC, 0)
        shard = service._shard_of(0)
        await backend.submit([start_record("other")])  # another coordinator took over...
        for base in range(0, 5000, 1000):  # ...with 5000 groups: a long copy
            rows = [commit_record("other", f"g{base + j}", [("t", 0, 1, "")]) for j in range(1000)]
            await backend.submit(rows)
        await shard.applied(backend.high_watermark - 1)  # this node sees it was replaced
        activating = asyncio.ensure_future(shard.ready())
        while not shard.active:  # the new start applied: copying now
            await asyncio.sleep(0)
        assert not activating.done()
        answer = await service.heartbeat("late", "", 0, ["t"], None, 30_000)
        await activating
        await service.heartbeat("late", answer.member_id, answer.member_epoch, None, None)

    server.call(scenario())  # main: UnknownMemberError (the copy's end cleared the groups)


# -- 8. delete drops a member that joined while the delete record was being written -------------


def test_a_member_that_joins_while_its_group_is_deleted_is_not_silently_dropped(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory(offsets_topic_partitions=1)
    service = server.agent.groups

    async def scenario() -> None:
        await server.agent.topics.create_topic("t", 1, 1, {})
        await service.commit("d", "", 0, {TopicPartition("t", 0): (5, "")})
        deleting = asyncio.ensure_future(service.delete("d"))
        await asyncio.sleep(0)  # the delete checked "no members" and is writing its record
        answer = await service.heartbeat("d", "", 0, ["t"], None, 30_000)
        await deleting
        # Either the join fails, or the member is still one afterwards; main: neither.
        await service.heartbeat("d", answer.member_id, answer.member_epoch, None, None)

    server.call(scenario())


# -- 9. one malformed record kills the reader for good: every later write hangs -------------------


@pytest.mark.parametrize(
    "value",
    ['{"k":"start"}', '{"k":"commit","inc":"INC","g":"g","o":[["t",1e400,1,""]]}'],
    ids=["start-without-inc", "partition-overflow"],
)
def test_a_malformed_offsets_record_is_skipped_and_later_writes_still_answer(
    server_factory: Callable[..., ThreadedServer], value: str
) -> None:
    from replog.v1.record_pb2 import Record

    server = server_factory(offsets_topic_partitions=1)
    service = server.agent.groups

    async def scenario() -> None:
        await server.agent.topics.create_topic("t", 1, 1, {})
        await service.commit("g", "", 0, {TopicPartition("t", 0): (1, "")})
        backend = server.agent.topics.partition(OFFSETS_TOPIC, 0)
        shard = service._shard_of(0)
        end = backend.high_watermark
        waiting = asyncio.ensure_future(shard.applied(end + 1))  # a write in flight waits
        await asyncio.sleep(0)
        malformed = value.replace("INC", shard.incarnation).encode()
        await backend.submit([Record(key=b"g", value=malformed)])  # at `end`
        await backend.submit([commit_record(shard.incarnation, "g", [("t", 0, 2, "")])])
        await asyncio.wait_for(waiting, 5)  # main: TimeoutError, the reader died at `end`

    server.call(scenario())


def test_racing_first_joins_make_the_offsets_topic_once_and_all_succeed(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory()
    service = server.agent.groups

    async def scenario() -> list[Any]:
        await server.agent.topics.create_topic("t", 12, 1, {})
        joins = [service.heartbeat(f"g{i}", "", 0, ["t"], None, 30_000) for i in range(6)]
        return await asyncio.gather(*joins)

    answers = server.call(scenario())
    assert all(a.member_id for a in answers)
