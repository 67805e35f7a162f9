"""kcat (librdkafka's command-line client) against replog's Kafka listener: metadata
(-L), produce (-P), consume from the beginning to the end (-C -o beginning -e) and in a
group (-G)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from replog import Client
from tests.kafka.conftest import KafkaServer

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (apt-get install kcat)")


def _kcat(server: KafkaServer, *args: str, stdin: str | None = None) -> str:
    assert KCAT is not None
    done = subprocess.run(
        [KCAT, "-b", server.kafka_address, *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kcat_lists_topics_produces_and_consumes_to_the_end(kafka_server: KafkaServer) -> None:
    kafka_server.create_topic("cli", partitions=2)
    listing = _kcat(kafka_server, "-L")
    assert 'topic "cli" with 2 partitions' in listing
    _kcat(kafka_server, "-P", "-t", "cli", "-p", "1", "-K", ":", stdin="a:one\nb:two\nc:three\n")
    out = _kcat(kafka_server, "-C", "-t", "cli", "-p", "1", "-o", "beginning", "-e",
                "-f", "%o %k %s\\n")  # fmt: skip
    assert out.splitlines() == ["0 a one", "1 b two", "2 c three"]
    with Client(kafka_server.grpc_address) as client:
        assert client.consume(2, topic="cli", partition=1).value == b"three"


def test_kcat_group_mode_reads_a_topic_and_commits_the_groups_offsets(
    kafka_server: KafkaServer,
) -> None:
    kafka_server.create_topic("grp", partitions=2)
    _kcat(kafka_server, "-P", "-t", "grp", "-p", "0", stdin="a\nb\n")
    _kcat(kafka_server, "-P", "-t", "grp", "-p", "1", stdin="c\n")
    out = _kcat(kafka_server, "-G", "kcat-group", "-o", "beginning", "-e",
                "-X", "auto.commit.interval.ms=100", "-f", "%s\\n", "grp")  # fmt: skip
    assert sorted(out.split()) == ["a", "b", "c"]
    with Client(kafka_server.grpc_address) as client:
        assert client.fetch_offsets("kcat-group") == {("grp", 0): 2, ("grp", 1): 1}
