"""The idempotent Producer across a kill -9 and restart of a single-node server."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from replog import Client, Producer
from replog.client.producer import RecordFuture
from tests.integration.conftest import ServerProcess, wait_until

RECORDS = 20_000
DELIVERY_TIMEOUT_MS = 30_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_server_killed_and_restarted_mid_run_keeps_every_record_once_in_send_order(
    tmp_path: Path, process_factory: Callable[..., ServerProcess]
) -> None:
    addr = f"127.0.0.1:{free_port()}"
    serve = ("--grpc-addr", addr, "--sync", "always")
    server = process_factory(tmp_path / "data", *serve)
    values = [b"v%06d" % i for i in range(RECORDS)]
    futures: list[RecordFuture] = []
    client = Client(addr, timeout=2.0)
    producer = Producer(
        client,
        max_batch_records=200,
        max_buffered_records=1_000,  # back-pressure: sending goes on across the restart
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        retry_backoff_ms=50,
    )
    sender = threading.Thread(target=lambda: futures.extend(producer.send(v) for v in values))
    sender.start()
    wait_until(lambda: producer.client.picker.written > RECORDS // 4, 30, "records acknowledged")
    server.kill()  # SIGKILL with batches in flight: their outcome is unknown to the producer
    restarted_at = time.monotonic()
    process_factory(tmp_path / "data", *serve)  # the same address and data
    sender.join(60)
    producer.flush(timeout=DELIVERY_TIMEOUT_MS / 1000 + 30)
    producer.close()
    assert all(f.exception() is None for f in futures), "a record failed"
    offsets = [f.result() for f in futures]
    assert all(a < b for a, b in itertools.pairwise(offsets)), "out of send order"
    with Client(addr) as reader:
        log = [r.value for r in reader.consume_batch(0, max_records=RECORDS * 2).records]
    assert log == values  # every record once, none resent twice
    assert time.monotonic() - restarted_at < DELIVERY_TIMEOUT_MS / 1000
    client.close()
