"""The embedded Broker: topics of partitions in one directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from replog import Log, LogConfig
from replog.broker import Broker, TopicConfig
from replog.broker.partitioner import partition_for_key
from replog.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidArgumentError,
    LogLockedError,
    OffsetOutOfRangeError,
    UnknownPartitionError,
    UnknownTopicError,
)
from replog.v1.record_pb2 import Record


def test_a_new_broker_has_the_default_topic_with_one_partition(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        assert broker.topics() == ["default"]
        assert broker.partition_count("default") == 1
        assert broker.append("default", b"x") == (0, 0)


def test_each_partition_has_dense_offsets_of_its_own_from_zero(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("orders", 3)
        for i in range(4):
            assert broker.append("orders", b"a%d" % i, partition=2) == (2, i)
        assert broker.append("orders", b"b", partition=0) == (0, 0)
        assert [r.value for r in broker.read_batch("orders", 2, 0)] == [b"a0", b"a1", b"a2", b"a3"]
        assert broker.read("orders", 0, 0).value == b"b"


def test_a_keyed_record_lands_on_the_partition_kafkas_partitioner_chooses(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 12)
        for i in range(50):
            key = b"user-%d" % i
            partition, _ = broker.append("t", b"v", key=key)
            assert partition == partition_for_key(key, 12)
            assert broker.read_batch("t", partition, 0)[-1].key == key


def test_a_batch_goes_to_one_partition_and_mixed_keys_are_refused(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 8)
        keys = [b"k%d" % i for i in range(64)]
        one = keys[0]
        same = [k for k in keys if partition_for_key(k, 8) == partition_for_key(one, 8)]
        other = next(k for k in keys if partition_for_key(k, 8) != partition_for_key(one, 8))
        records = [Record(value=b"v", key=k) for k in same] + [Record(value=b"keyless")]
        assert broker.append_batch("t", records) == (partition_for_key(one, 8), 0)
        before = [broker.log("t", p).next_offset for p in range(8)]
        with pytest.raises(InvalidArgumentError, match="one batch per partition"):
            broker.append_batch("t", [Record(value=b"v", key=one), Record(value=b"v", key=other)])
        assert [broker.log("t", p).next_offset for p in range(8)] == before


def test_keyless_records_stick_to_a_partition_per_batch_and_spread_over_batches(
    tmp_path: Path,
) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 4)
        used = {broker.append_batch("t", [b"a", b"b"])[0] for _ in range(200)}
        assert used == {0, 1, 2, 3}


def test_topics_and_their_records_survive_a_reopen(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("a", 2, {"retention.ms": "60000"})
        broker.append("a", b"x", partition=1)
    with Broker(tmp_path) as broker:
        assert broker.topics() == ["a", "default"]
        assert broker.read("a", 1, 0).value == b"x"
        assert broker.topic_config("a").retention_ms == 60000


def test_describe_shows_every_key_and_each_partitions_offsets(tmp_path: Path) -> None:
    with Broker(tmp_path, node_id="n1") as broker:
        broker.create_topic("t", 2, {"segment_bytes": 4096, "max_record_bytes": 1024})
        broker.append("t", b"x", partition=1)
        d = broker.describe_topic("t")
        assert d.config["segment_bytes"] == "4096"
        assert d.config["retention_ms"] == "-1"
        assert [(p.partition, p.lowest_offset, p.next_offset) for p in d.partitions] == [
            (0, 0, 0),
            (1, 0, 1),
        ]
        assert d.partitions[1].leader == "n1" and d.partitions[1].replicas == ("n1",)
        assert d.partitions[1].size_bytes > 0


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a b", "ü", "x" * 250, "a/b", "../etc"],
)
def test_an_invalid_topic_name_is_refused_and_creates_nothing(tmp_path: Path, name: str) -> None:
    with Broker(tmp_path) as broker:
        with pytest.raises(InvalidArgumentError):
            broker.create_topic(name)
        assert broker.topics() == ["default"]
        assert sorted(os.listdir(tmp_path / "topics")) == ["default"]


def test_a_topic_name_of_249_legal_characters_is_accepted(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("a.B_9-" + "x" * 243)


@pytest.mark.parametrize("count", [0, -1, 4097, True, "3"])
def test_a_bad_partition_count_is_refused(tmp_path: Path, count: object) -> None:
    with Broker(tmp_path) as broker:
        with pytest.raises(InvalidArgumentError):
            broker.create_topic("t", count)  # type: ignore[arg-type]
        assert "t" not in broker.topics()


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"retention_hours": "1"}, "retention_hours"),
        ({"retention_ms": "soon"}, "retention_ms"),
        ({"retention_bytes": "0"}, "retention_bytes"),
        ({"sync": "sometimes"}, "sync"),
        ({"segment_bytes": "10"}, "segment_bytes"),
        ({"max_record_bytes": "99999999", "segment_bytes": "4096"}, "max_record_bytes"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(
    tmp_path: Path, config: dict[str, str], key: str
) -> None:
    with Broker(tmp_path) as broker:
        with pytest.raises(ConfigError, match=key):
            broker.create_topic("t", 1, config)
        assert "t" not in broker.topics()


def test_creating_a_topic_twice_is_refused_and_keeps_the_first(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 2)
        broker.append("t", b"x", partition=0)
        with pytest.raises(AlreadyExistsError):
            broker.create_topic("t", 5)
        assert broker.partition_count("t") == 2
        assert broker.read("t", 0, 0).value == b"x"


def test_an_unknown_topic_or_partition_is_a_clear_error(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 2)
        with pytest.raises(UnknownTopicError, match="'nope'"):
            broker.append("nope", b"x")
        with pytest.raises(UnknownPartitionError, match=r"partitions 0\.\.1"):
            broker.append("t", b"x", partition=2)
        with pytest.raises(UnknownPartitionError):
            broker.read("t", -1, 0)
        with pytest.raises(OffsetOutOfRangeError):
            broker.read("t", 1, 0)


def test_deleting_a_topic_removes_its_data(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 2)
        broker.append("t", b"x", partition=1)
        broker.delete_topic("t")
        assert broker.topics() == ["default"]
        assert not (tmp_path / "topics" / "t").exists()
        assert os.listdir(tmp_path / ".staging") == []
        with pytest.raises(UnknownTopicError):
            broker.delete_topic("t")
        broker.create_topic("t", 1)  # a new topic of the same name starts empty
        assert broker.log("t", 0).next_offset == 0


def test_partitions_can_grow_never_shrink(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 2)
        broker.append("t", b"x", partition=1)
        assert broker.create_partitions("t", 5).partition_count == 5
        for bad in (5, 3, 4097):
            with pytest.raises(InvalidArgumentError):
                broker.create_partitions("t", bad)
        assert broker.read("t", 1, 0).value == b"x"
    with Broker(tmp_path) as broker:
        assert broker.partition_count("t") == 5


def test_altering_the_config_sets_and_resets_keys(tmp_path: Path) -> None:
    with Broker(tmp_path, defaults=TopicConfig(retention_ms=1000)) as broker:
        broker.create_topic("t", 1, {"retention_bytes": "5000"})
        d = broker.alter_topic_config("t", {"retention.ms": "7"}, ["retention_bytes"])
        assert d.config["retention_ms"] == "7" and d.config["retention_bytes"] == "-1"
        d = broker.alter_topic_config("t", {}, ["retention_ms"])
        assert d.config["retention_ms"] == "1000"
        with pytest.raises(ConfigError, match="bogus"):
            broker.alter_topic_config("t", {"bogus": "1"})
        with pytest.raises(ConfigError, match="retention_ms"):
            broker.alter_topic_config("t", {"retention_ms": "x"})
        assert broker.describe_topic("t").config["retention_ms"] == "1000"


def test_a_new_segment_size_reopens_the_partitions_and_keeps_their_records(
    tmp_path: Path,
) -> None:
    with Broker(tmp_path) as broker:
        broker.create_topic("t", 1)
        broker.append("t", b"x" * 100, partition=0)
        broker.alter_topic_config("t", {"segment_bytes": "1024", "max_record_bytes": "512"})
        for _ in range(20):
            broker.append("t", b"y" * 100, partition=0)
        assert broker.log("t", 0).segment_count > 1
        assert broker.read("t", 0, 0).value == b"x" * 100


def test_a_second_broker_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with Broker(tmp_path), pytest.raises(LogLockedError):
        Broker(tmp_path)


def test_a_single_log_directory_becomes_the_default_topic(tmp_path: Path) -> None:
    with Log(tmp_path) as log_:
        for i in range(3):
            log_.append(b"old%d" % i)
    with Broker(tmp_path) as broker:
        assert broker.topics() == ["default"]
        assert [r.value for r in broker.read_batch("default", 0, 0)] == [b"old0", b"old1", b"old2"]
        assert broker.append("default", b"new") == (0, 3)
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".store", ".index"))]


def test_an_interrupted_migration_finishes_on_the_next_open(tmp_path: Path) -> None:
    with Log(tmp_path, LogConfig(max_store_bytes=256, max_record_bytes=200)) as log_:
        for i in range(20):
            log_.append(b"r%02d" % i)
    segments = sorted(n for n in os.listdir(tmp_path) if n.endswith(".store"))
    assert len(segments) > 2
    # The crash came after the first segment's files were moved.
    partial = tmp_path / ".staging" / "migrate-default" / "0"
    partial.mkdir(parents=True)
    for name in os.listdir(tmp_path):
        if name.startswith(segments[0][:-6]):
            os.replace(tmp_path / name, partial / name)
    with Broker(tmp_path) as broker:
        log_ = broker.log("default", 0)
        assert [log_.read(i).value for i in range(log_.next_offset)] == [
            b"r%02d" % i for i in range(20)
        ]


def test_a_topic_left_half_created_by_a_crash_is_not_a_topic(tmp_path: Path) -> None:
    with Broker(tmp_path):
        pass
    staged = tmp_path / ".staging" / "create-abc"
    staged.mkdir()
    (staged / "topic.json").write_text("{}")
    with Broker(tmp_path) as broker:
        assert broker.topics() == ["default"]
    assert os.listdir(tmp_path / ".staging") == []


def test_the_broker_directory_and_its_files_are_private(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with Broker(root) as broker:
        broker.create_topic("t", 1)
        broker.append("t", b"x")
    for where, _dirs, files in os.walk(root):
        assert stat.S_IMODE(os.stat(where).st_mode) == 0o700, where
        for name in files:
            mode = stat.S_IMODE(os.stat(os.path.join(where, name)).st_mode)
            assert mode & 0o077 == 0, (where, name)


def test_closed_broker_refuses_work(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.close()
    broker.close()
    with pytest.raises(Exception, match="closed"):
        broker.append("default", b"x")


def test_the_default_topic_cannot_be_deleted(tmp_path: Path) -> None:
    with Broker(tmp_path) as broker:
        broker.append("default", b"x")
        with pytest.raises(InvalidArgumentError, match="names no topic"):
            broker.delete_topic("default")
        assert broker.read("default", 0, 0).value == b"x"
