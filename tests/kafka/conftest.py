"""A replog server with its Kafka listener on an ephemeral 127.0.0.1 port, in-process,
stopped at the end of each test; helpers the real-client tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ThreadedServer, wait_until

__all__ = ["KafkaServer", "wait_until"]


class KafkaServer(ThreadedServer):
    """A ThreadedServer with ``kafka_addr`` on; ``kafka_address`` is where clients go."""

    @property
    def kafka_address(self) -> str:
        assert self.agent is not None
        return self.agent.kafka_address

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic through the server's own topics seam."""
        assert self.agent is not None and self.agent.topics is not None
        self.call(self.agent.topics.create_topic(name, partitions, 1, {}))


@pytest.fixture
def kafka_factory(tmp_path: Path) -> Iterator[Callable[..., KafkaServer]]:
    """Starts Kafka-enabled servers (settings as keywords); stops them all after the test."""
    servers: list[KafkaServer] = []

    def make(**settings: Any) -> KafkaServer:
        server = KafkaServer(tmp_path / f"data{len(servers)}", kafka_addr="127.0.0.1:0", **settings)
        servers.append(server)
        return server.start()  # type: ignore[return-value]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def kafka_server(kafka_factory: Callable[..., KafkaServer]) -> KafkaServer:
    """One Kafka-enabled server."""
    return kafka_factory()
