"""A consumer group member in a process of its own, for tests that kill it with SIGKILL:
``python group_worker.py ADDR GROUP TOPIC OUT SESSION_MS`` consumes ``TOPIC`` in ``GROUP``
(from the earliest offset, auto-committing) and appends ``partition offset value`` to
``OUT`` for each record, flushed before the next poll, until killed or SIGTERM."""

from __future__ import annotations

import signal
import sys

from replog import Client, Consumer


def main() -> None:
    """Consume until stopped."""
    addr, group, topic, out, session_ms = sys.argv[1:6]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with Client(addr, timeout=10) as client, open(out, "a", encoding="utf-8") as sink:
        consumer = Consumer(
            client,
            group=group,
            topics=[topic],
            auto_offset_reset="earliest",
            auto_commit_interval_ms=200,
            session_timeout_ms=int(session_ms),
        )
        try:
            while not stopping:
                record = consumer.poll(0.1)
                if record is not None:
                    sink.write(f"{record.partition} {record.offset} {record.value.decode()}\n")
                    sink.flush()
        finally:
            consumer.close()


if __name__ == "__main__":
    main()
