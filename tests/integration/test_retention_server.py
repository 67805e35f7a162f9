"""A single-node server applies topics' retention in the background."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from replog.server.broker_backend import BrokerBackend
from tests.integration.conftest import ThreadedServer

SMALL = {"segment_bytes": "1024", "max_record_bytes": "512"}


def _topics(server: ThreadedServer) -> BrokerBackend:
    assert server.agent is not None and isinstance(server.agent.topics, BrokerBackend)
    return server.agent.topics


def _produce(server: ThreadedServer, topic: str, count: int) -> None:
    backend = _topics(server).partition(topic, 0)

    async def produce() -> None:
        for i in range(count):
            await backend.submit([b"%05d" % i + b"x" * 100])

    server.call(produce())


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_server_deletes_expired_segments_by_itself(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    server = server_factory(retention_check_interval_ms=50)
    topics = _topics(server)
    server.call(topics.create_topic("short", 1, 1, {**SMALL, "retention_ms": "1"}))
    server.call(topics.create_topic("long", 1, 1, {**SMALL, "retention_ms": "3600000"}))
    _produce(server, "short", 60)
    _produce(server, "long", 60)
    backend = topics.partition("short", 0)
    _wait(lambda: backend.lowest_offset > 0, "retention to delete the old segments")
    assert backend.high_watermark == 60
    # Younger than its limit: kept, though every segment but the active one is sealed.
    assert topics.partition("long", 0).lowest_offset == 0
    described = topics.describe_topic("short").partitions[0]
    assert described.lowest_offset == backend.lowest_offset
    assert described.next_offset == 60


def test_a_retention_setting_on_the_server_is_every_topics_default(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory(retention_ms=3_600_000, segment_ms=60_000)
    config = _topics(server).describe_topic("default").config
    assert config["retention_ms"] == "3600000"
    assert config["segment_ms"] == "60000"


def test_a_produce_that_races_a_topic_deletion_hears_the_topic_is_gone(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    from replog.errors import UnavailableError, UnknownTopicError

    server = server_factory()
    topics = _topics(server)
    server.call(topics.create_topic("doomed", 1, 1, {}))
    held = topics.partition("doomed", 0)  # routed before the delete, as a request may be
    server.call(topics.delete_topic("doomed"))

    async def produce() -> BaseException | None:
        try:
            await held.submit([b"late"])
        except (UnknownTopicError, UnavailableError) as exc:
            return exc
        return None

    refusal = server.call(produce())
    assert isinstance(refusal, UnknownTopicError), refusal


def test_a_produce_that_races_a_reconfiguration_is_told_to_retry(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    from replog.errors import UnavailableError

    server = server_factory()
    topics = _topics(server)
    server.call(topics.create_topic("moving", 1, 1, {}))
    held = topics.partition("moving", 0)
    server.call(topics.alter_topic_config("moving", {"sync": "never"}, []))

    async def produce() -> BaseException | None:
        try:
            await held.submit([b"late"])
        except UnavailableError as exc:
            return exc
        return None

    refusal = server.call(produce())
    assert isinstance(refusal, UnavailableError) and refusal.certainly_not_applied
    assert "reconfigured" in str(refusal), refusal

    async def produce_again() -> int:
        return await topics.partition("moving", 0).submit([b"after"])

    assert server.call(produce_again()) == 0  # the reopened partition takes appends
