"""``replog serve --kafka-addr`` turns the listener on (its address in the ready file) and
``--kafka-advertised-addr`` is what Metadata tells clients; without the flag it is off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests.integration.conftest import ServerProcess


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.kill()


def test_replog_serve_with_kafka_addr_serves_a_kafka_producer(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    proc = ServerProcess(tmp_path / "data", tmp_path, "--kafka-addr", "127.0.0.1:0")
    processes.append(proc)
    address = json.loads(proc.ready_file.read_text())["kafka_addr"]
    producer = Producer({"bootstrap.servers": address})
    delivered: list[tuple[object, int]] = []
    producer.produce(
        "default", b"hello", partition=0,
        on_delivery=lambda err, msg: delivered.append((err, msg.offset())),
    )  # fmt: skip
    assert producer.flush(20) == 0
    assert delivered == [(None, 0)]
    assert proc.terminate() == 0


def test_metadata_names_the_advertised_address(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    proc = ServerProcess(
        tmp_path / "data", tmp_path, "--kafka-addr", "127.0.0.1:0",
        "--kafka-advertised-addr", "kafka.example:19092",
    )  # fmt: skip
    processes.append(proc)
    address = json.loads(proc.ready_file.read_text())["kafka_addr"]
    brokers = AdminClient({"bootstrap.servers": address}).list_topics(timeout=10).brokers
    assert [(b.host, b.port) for b in brokers.values()] == [("kafka.example", 19092)]


def test_without_kafka_addr_no_kafka_listener_is_started(
    tmp_path: Path, processes: list[ServerProcess]
) -> None:
    proc = ServerProcess(tmp_path / "data", tmp_path)
    processes.append(proc)
    assert "kafka_addr" not in json.loads(proc.ready_file.read_text())
