"""A Producer whose server went away with a backlog buffered: every record fails once its
delivery timeout has passed, counted from its batch's last record — not from when the
backlog let its batch in (which made 20,000 buffered records wait behind batches that each
took a full timeout to fail: flush() did not return for many minutes)."""

from __future__ import annotations

from replog.client import Client, Producer
from replog.errors import ReplogError
from tests.integration.conftest import ThreadedServer


def test_a_backlog_for_a_server_that_went_away_fails_within_its_delivery_timeout(
    server: ThreadedServer,
) -> None:
    client = Client(server.grpc_address, timeout=2)
    producer = Producer(client, max_batch_records=10, linger_ms=1, delivery_timeout_ms=2000)
    try:
        producer.send(b"first").result(timeout=10)
        server.stop()
        futures = [producer.send(b"r%d" % i) for i in range(20_000)]
        producer.flush(timeout=60)  # raised TimeoutError (a wait of ~1,000 s) before the fix
        errors = [f.exception(timeout=0) for f in futures]
        assert all(isinstance(e, ReplogError) for e in errors)
    finally:
        producer.close(timeout=5)
        client.close()
