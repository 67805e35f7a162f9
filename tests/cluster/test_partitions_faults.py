"""Topics on a cluster of real ``replog serve`` processes (issue 12, "Tests"): a topic of 12
partitions with replication factor 3, each partition its own Raft group.

- keyed records land on murmur2's partition and the leaders are spread (no node leads more
  than ceil(12/3)+1);
- kill -9 of a node under a workload on every partition (the fault tests' workload, one per
  partition, producers retrying): every partition is writable again within a bound, and the
  checker of tests/cluster/checker.py, run per partition on every replica's log after the
  cluster stopped, finds nothing acknowledged lost, duplicated or reordered; the node comes
  back and gets leaderships back (leader balancing);
- five nodes: placement puts three distinct nodes in every replica set, evenly, and a
  kill -9 there too leaves every partition writable and loses nothing;
- retention deletes old segments on every replica, never a record younger than the limit,
  and a follower that was down meanwhile catches up by a segment snapshot;
- deleting a topic removes its data on every replica, one that was down included.

Timing: 50 ms ticks x 10 (the fault tests' conftest), leader balancing every 300 ms; the
nodes talk straight to each other (no network fault here, so no proxy in the test's
process). The file takes about 70 s on a 2-core machine.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest

from replog.broker.model import TopicDescription
from replog.broker.partitioner import partition_for_key
from replog.client import Client
from replog.client.admin import topic_from
from replog.storage.inspect import list_segments
from replog.v1 import admin_pb2, log_pb2
from tests.cluster.checker import Summary, check
from tests.cluster.conftest import ProcCluster, ProcNode, wait_until
from tests.cluster.workload import Workload

pytestmark = pytest.mark.timeout(120)

TOPIC = "orders"
PARTITIONS = 12
MAX_LEADS = math.ceil(PARTITIONS / 3) + 1
BALANCE = ("--leader-balance-interval-ms", "300")
WRITABLE_WITHIN_S = 10.0


@pytest.fixture
def procs(direct_procs: ProcCluster) -> ProcCluster:
    """The processes talk straight to each other: these tests inject no network fault."""
    return direct_procs


# -- views of the cluster -----------------------------------------------------------------


def describe_on(node: ProcNode, topic: str) -> TopicDescription | None:
    """``topic`` as ``node`` itself describes it (None if it does not answer)."""
    if not node.running or node.paused or not node.grpc_address:
        return None
    with grpc.insecure_channel(
        node.grpc_address, options=[("grpc.enable_http_proxy", 0)]
    ) as channel:
        call = channel.unary_unary(
            "/replog.v1.Admin/DescribeTopic",
            request_serializer=admin_pb2.DescribeTopicRequest.SerializeToString,
            response_deserializer=admin_pb2.DescribeTopicResponse.FromString,
        )
        try:
            response = call(admin_pb2.DescribeTopicRequest(name=topic), timeout=2)
        except grpc.RpcError:
            return None
    return topic_from(response.topic)


def views(procs: ProcCluster, topic: str) -> dict[str, TopicDescription] | None:
    """Every running node's description of ``topic``; None unless all of them answer."""
    out = {n.name: describe_on(n, topic) for n in procs.up()}
    if any(d is None for d in out.values()):
        return None
    return {name: d for name, d in out.items() if d is not None}


def leaders(procs: ProcCluster, topic: str) -> dict[int, str] | None:
    """Each partition's leader, when every running replica of it names the same running
    node (a node knows the leaders of the partitions it hosts only); else None."""
    seen = views(procs, topic)
    if seen is None:
        return None
    up = {n.name for n in procs.up()}
    out: dict[int, str] = {}
    for p in next(iter(seen.values())).partitions:
        claims = {seen[n].partitions[p.partition].leader for n in p.replicas if n in seen}
        if len(claims) != 1 or not claims <= up:
            return None
        out[p.partition] = claims.pop()
    return out


def balanced(procs: ProcCluster, topic: str, must_lead: str = "") -> dict[int, str] | None:
    """The leaders, once no node leads more than MAX_LEADS (and ``must_lead`` leads some)."""
    found = leaders(procs, topic)
    if found is None:
        return None
    counts = Counter(found.values())
    if max(counts.values()) > MAX_LEADS or (must_lead and not counts[must_lead]):
        return None
    return found


def converged(procs: ProcCluster, topic: str) -> dict[int, int] | None:
    """Each partition's commit index, once every replica of it reports the same one."""
    seen = views(procs, topic)
    if seen is None or len(seen) != len(procs.nodes):
        return None
    out: dict[int, int] = {}
    for p in next(iter(seen.values())).partitions:
        ends = {seen[n].partitions[p.partition].next_offset for n in p.replicas}
        if len(ends) != 1 or not seen[p.replicas[0]].partitions[p.partition].leader:
            return None
        out[p.partition] = ends.pop() - 1
    return out


def partition_dir(node: ProcNode, topic: str, partition: int) -> Path:
    return node.data_dir / "topics" / topic / str(partition)


# -- the workload and its judgement -------------------------------------------------------


def start_workloads(
    procs: ProcCluster, topic: str, count: int, max_s: float = 60.0
) -> list[Workload]:
    """One workload per partition: two producers each (they race on one partition), a
    consumer on every fourth; they run until stopped or ``max_s`` has passed (never out of
    batches before that)."""

    def targets() -> list[tuple[str, str]]:
        return [(n.name, n.grpc_address) for n in procs.up()]

    return [
        Workload(
            targets,
            producers=2,
            consumers=1 if p % 4 == 0 else 0,
            max_batch=10,
            max_ops=1_000_000,
            max_s=max_s,
            timeout_s=2.0,
            seed=p,
            topic=topic,
            partition=p,
        ).start()
        for p in range(count)
    ]


def wait_every_partition_acked(workloads: Sequence[Workload], more: int, what: str) -> None:
    """Wait until each partition's workload had ``more`` further batches acknowledged."""
    bases = [len(w.acked()) for w in workloads]

    def behind() -> list[int]:
        return [
            w.partition for w, b in zip(workloads, bases, strict=True) if len(w.acked()) < b + more
        ]

    try:
        wait_until(lambda: not behind(), 30, f"{more} batches on every partition {what}")
    except AssertionError:
        stuck = behind()
        ended = [p for p in stuck if not workloads[p].producing()]
        assert not ended, f"the workloads of partitions {ended} ended {what}: the test outran them"
        raise AssertionError(
            f"partitions {stuck} took fewer than {more} batches {what}; last attempts:\n"
            + "\n".join(workloads[p].timeline(8) for p in stuck[:2])
        ) from None


def writable_again(workloads: Sequence[Workload], since: float, timeout: float) -> list[float]:
    """Per partition: seconds from ``since`` to the first batch sent after it and
    acknowledged; waits up to ``timeout`` for every partition."""

    def first_acks() -> list[float] | None:
        firsts = []
        for w in workloads:
            acked = [op.finished for op in w.acked() if op.started >= since]
            if not acked:
                return None
            firsts.append(min(acked) - since)
        return firsts

    try:
        found: list[float] = wait_until(first_acks, timeout, "every partition to be writable")
    except AssertionError:
        stuck = [w.partition for w in workloads if not any(o.started >= since for o in w.acked())]
        raise AssertionError(
            f"partitions {stuck} took no write {timeout} s after the kill; last attempts:\n"
            + "\n".join(workloads[p].timeline(8) for p in stuck[:2])
        ) from None
    return found


def attempts_since(workload: Workload, since: float, last: int = 12) -> str:
    """The first ``last`` attempts on a partition sent after ``since`` (for the report)."""
    ops = [op for op in workload.ops if op.started >= since][:last]
    return "\n".join(
        f"  +{op.started - since:.2f}..+{op.finished - since:.2f} {op.name} {op.node} "
        f"{op.kind} {op.error[:100]}"
        for op in ops
    )


def finish(procs: ProcCluster, topic: str, workloads: Sequence[Workload]) -> list[Summary]:
    """Stop the workloads, wait until every partition's replicas share one commit index,
    stop every node (SIGTERM: their logs are complete on disk), check every partition."""
    for w in workloads:
        w.stop()
    commits: dict[int, int] = wait_until(
        lambda: converged(procs, topic), 30, "every partition's replicas to converge"
    )
    seen = views(procs, topic)
    assert seen is not None
    replicas = {p.partition: p.replicas for p in next(iter(seen.values())).partitions}
    procs.stop_all()
    summaries = []
    for w in workloads:
        dirs = {
            name: partition_dir(procs.nodes[name], topic, w.partition) / "log"
            for name in replicas[w.partition]
        }
        summary = check(w, dirs, commits[w.partition])
        assert summary.acked > 0, f"partition {w.partition}: nothing acknowledged"
        summaries.append(summary)
    acked = sum(s.acked for s in summaries)
    unknown = sum(s.unknown for s in summaries)
    print(f"\n{len(summaries)} partitions checked: {acked} batches acknowledged, {unknown} unknown")
    return summaries


class Phases:
    """Prints how long each phase of a test took (the report of a slow run)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, what: str) -> None:
        now = time.monotonic()
        print(f"  [{now - self.last:5.1f} s] {what}")
        self.last = now


def create_topic(procs: ProcCluster, name: str, partitions: int, **config: str) -> None:
    with Client(procs.addresses(), timeout=10) as client:
        created = client.create_topic(name, partitions, replication_factor=3, config=config)
    assert created.partition_count == partitions


# -- the tests ----------------------------------------------------------------------------


def test_kill_9_of_a_node_under_load_leaves_every_partition_writable_and_loses_nothing(
    procs: ProcCluster,
) -> None:
    phase = Phases()
    procs.bootstrap(3, *BALANCE)
    create_topic(procs, TOPIC, PARTITIONS)
    before = wait_until(lambda: balanced(procs, TOPIC), 20, "the leaders to be spread")
    phase("bootstrap, topic created, leaders spread")
    workloads = start_workloads(procs, TOPIC, PARTITIONS)
    wait_every_partition_acked(workloads, 3, "before the kill")
    phase("workload on every partition")
    victim = procs.leader()  # the controller's leader too: the metadata fails over as well
    assert victim is not None
    killed_at = time.monotonic()
    procs.nodes[victim].kill()
    took = writable_again(workloads, killed_at, 3 * WRITABLE_WITHIN_S)
    print(f"\nkill -9 of {victim} (led {Counter(before.values())[victim]}): first write per "
          f"partition after {sorted(round(t, 2) for t in took)} s")  # fmt: skip
    slowest = max(range(len(took)), key=took.__getitem__)
    print(f"partition {slowest}, the slowest:\n{attempts_since(workloads[slowest], killed_at)}")
    assert max(took) < WRITABLE_WITHIN_S, took
    after = wait_until(lambda: leaders(procs, TOPIC), 10, "a leader for every partition")
    assert victim not in after.values()
    phase("every partition writable without the victim")
    procs.nodes[victim].start()
    back = wait_until(lambda: balanced(procs, TOPIC, must_lead=victim), 30,
                      f"{victim} to lead again")  # fmt: skip
    phase("restarted, leaderships back")
    print(f"after the restart: leaders per node {dict(sorted(Counter(back.values()).items()))}")
    wait_every_partition_acked(workloads, 2, "after the restart")
    phase("written after the restart")
    finish(procs, TOPIC, workloads)
    phase("converged, stopped, checked")


def test_five_nodes_place_replicas_apart_and_survive_a_kill_9_without_loss(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(5, *BALANCE)
    create_topic(procs, TOPIC, PARTITIONS)
    with Client(procs.addresses(), timeout=10) as client:
        described = client.describe_topic(TOPIC)
    held: Counter[str] = Counter()
    for p in described.partitions:
        assert len(set(p.replicas)) == 3, p
        held.update(p.replicas)
    assert set(held) == set(procs.names) and max(held.values()) - min(held.values()) <= 1, held
    preferred = Counter(p.replicas[0] for p in described.partitions)
    assert max(preferred.values()) <= math.ceil(PARTITIONS / 5), preferred
    before = wait_until(lambda: balanced(procs, TOPIC), 20, "the leaders to be spread")
    workloads = start_workloads(procs, TOPIC, PARTITIONS)
    wait_every_partition_acked(workloads, 3, "before the kill")
    victim = Counter(before.values()).most_common(1)[0][0]
    killed_at = time.monotonic()
    procs.nodes[victim].kill()
    took = writable_again(workloads, killed_at, 3 * WRITABLE_WITHIN_S)
    print(f"\nkill -9 of {victim}: first write per partition after "
          f"{sorted(round(t, 2) for t in took)} s")  # fmt: skip
    slowest = max(range(len(took)), key=took.__getitem__)
    print(f"partition {slowest}, the slowest:\n{attempts_since(workloads[slowest], killed_at)}")
    assert max(took) < WRITABLE_WITHIN_S, took
    wait_every_partition_acked(workloads, 3, f"without {victim}")
    procs.nodes[victim].start()
    finish(procs, TOPIC, workloads)


def read_all(node: ProcNode, topic: str, partition: int, start: int, end: int) -> dict[int, bytes]:
    """Every user record ``node`` serves of a partition from ``start`` to ``end``, by offset."""
    out: dict[int, bytes] = {}
    offset = start
    with grpc.insecure_channel(
        node.grpc_address, options=[("grpc.enable_http_proxy", 0)]
    ) as channel:
        call = channel.unary_unary(
            "/replog.v1.Log/ConsumeBatch",
            request_serializer=log_pb2.ConsumeBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ConsumeBatchResponse.FromString,
        )
        while offset < end:
            request = log_pb2.ConsumeBatchRequest(
                offset=offset, max_records=100, topic=topic, partition=partition
            )
            try:
                records = call(request, timeout=5).records
            except grpc.RpcError as exc:
                raise AssertionError(
                    f"{node.name} refused a read of {topic}/{partition} from {offset}: "
                    f"{exc.code()} {exc.details()}"
                ) from None
            assert records, f"{node.name} served nothing of {topic}/{partition} from {offset}"
            out.update((r.offset, r.value) for r in records)
            offset = records[-1].offset + 1
    return out


def segments(node: ProcNode, topic: str, partition: int) -> list[tuple[int, int]]:
    """(base offset, store bytes) of each segment on ``node``'s disk, oldest first."""
    found = list_segments(str(partition_dir(node, topic, partition) / "log"))
    out = []
    for s in found:
        try:
            out.append((s.base, os.path.getsize(s.store_path) if s.store_path else 0))
        except FileNotFoundError:
            continue  # retention deleted it between the listing and the stat
    return out


RETAINED = "logs"
RETENTION_BYTES = 8192


def produce_records(procs: ProcCluster, count: int, tag: str) -> dict[int, bytes]:
    """``count`` acknowledged records of ~100 B to ``RETAINED``/0, by offset."""
    acked: dict[int, bytes] = {}
    with Client(procs.addresses(), timeout=10) as client:
        for start in range(0, count, 10):
            values = [f"{tag}-{i}-".encode().ljust(100, b".") for i in range(start, start + 10)]
            base, n = client.produce_batch(values, topic=RETAINED, partition=0)
            acked.update((base + i, v) for i, v in enumerate(values[:n]))
    return acked


def test_retention_deletes_segments_on_every_replica_and_a_follower_down_meanwhile_catches_up(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3, *BALANCE, "--retention-check-interval-ms", "200")
    config = {"segment_bytes": "4096", "max_record_bytes": "1024"}
    create_topic(procs, RETAINED, 1, retention_bytes=str(RETENTION_BYTES), **config)
    acked = produce_records(procs, 200, "a")  # ~20 kB: about five segments
    end = max(acked) + 1

    def retained(names: list[str], past: int) -> dict[str, TopicDescription] | None:
        """The views once each of ``names`` deleted every segment its retention lets go
        (its lowest offset past ``past``), and its oldest segment on disk starts at the
        lowest offset it describes."""
        seen = views(procs, RETAINED)
        if seen is None:
            return None
        for n in names:
            lowest = seen[n].partitions[0].lowest_offset
            on_disk = segments(procs.nodes[n], RETAINED, 0)
            if lowest <= past or not on_disk or on_disk[0][0] != lowest:
                return None
            if len(on_disk) > 1 and sum(b for _, b in on_disk[1:]) >= RETENTION_BYTES:
                return None  # the oldest segment may still go
        return seen

    names = procs.names
    seen = wait_until(lambda: retained(names, 1), 20, "retention on every replica")
    for name in names:
        node, part = procs.nodes[name], seen[name].partitions[0]
        # Never deleted into the limit: at least retention_bytes stay, every record from the
        # lowest offset on is there with its value, and below it is out of range.
        assert part.size_bytes >= RETENTION_BYTES, (name, part)
        records = read_all(node, RETAINED, 0, part.lowest_offset, end)
        assert min(records) == part.lowest_offset, name
        assert records == {o: v for o, v in acked.items() if o >= part.lowest_offset}, name
    leader = wait_until(lambda: (found := leaders(procs, RETAINED)) and found[0], 10, "a leader")
    follower = next(n for n in names if n not in (leader, procs.leader()))
    procs.nodes[follower].kill()
    stopped_at = end
    more = produce_records(procs, 300, "b")  # the leader deletes what the follower lacks
    acked |= more
    end = max(acked) + 1
    up = [n for n in names if n != follower]
    wait_until(lambda: retained(up, stopped_at), 20, "retention past the stopped follower")
    procs.nodes[follower].start()

    def caught_up() -> TopicDescription | None:
        seen = views(procs, RETAINED)
        if seen is None:
            return None
        ends = {d.partitions[0].next_offset for d in seen.values()}
        return seen[follower] if ends == {end} else None

    mine = wait_until(caught_up, 20, f"{follower} to catch up").partitions[0]
    assert mine.lowest_offset > stopped_at, mine  # it got a snapshot of the segments
    records = read_all(procs.nodes[follower], RETAINED, 0, mine.lowest_offset, end)
    assert records == {o: v for o, v in acked.items() if o >= mine.lowest_offset}


def test_keyed_records_land_on_murmur2_partitions_leaders_spread_and_deletion_reaches_all(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3, *BALANCE)
    create_topic(procs, TOPIC, PARTITIONS)
    with Client(procs.addresses(), timeout=10) as client:
        for i in range(40):
            key = f"customer-{i}".encode()
            offset = client.produce(b"v%d" % i, key=key, topic=TOPIC)
            assert offset.partition == partition_for_key(key, PARTITIONS)
            record = client.consume(offset, topic=TOPIC, partition=offset.partition)
            assert (record.key, record.value) == (key, b"v%d" % i)
    found = wait_until(lambda: balanced(procs, TOPIC), 20, "the leaders to be spread")
    counts = Counter(found.values())
    print(f"\nleaders per node: {dict(sorted(counts.items()))}")
    assert set(counts) == set(procs.names), counts
    # Deleting the topic removes its data on every replica, one down meanwhile included.
    dirs = {n: procs.nodes[n].data_dir / "topics" / TOPIC for n in procs.names}
    for name, directory in dirs.items():
        assert {d.name for d in directory.iterdir()} == {str(p) for p in range(PARTITIONS)}, name
    down = next(n for n in procs.names if n != procs.leader())
    procs.nodes[down].kill()
    with Client(procs.addresses(), timeout=10) as client:
        client.delete_topic(TOPIC)
        assert [t.name for t in client.list_topics()] == ["default"]
    wait_until(lambda: not any(dirs[n].exists() for n in dirs if n != down), 10,
               "the data to go on the running replicas")  # fmt: skip
    assert dirs[down].exists()  # it was down: it learns of the deletion when it is back
    node = procs.nodes[down].start()
    wait_until(lambda: not dirs[down].exists() or not node.running, 20, f"{down} to remove it")
    # It once failed here: the restarted node applied the deletion while it was opening the
    # topic's groups, failed on the newer state and stopped (fail-stop) with its data left.
    assert node.running, f"{down} stopped: {node.tail()}"
    assert not dirs[down].exists()
