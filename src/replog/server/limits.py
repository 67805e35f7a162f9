"""What one client may hold of a server: records per produce request, open streams.

Both APIs share one :class:`Limits`, so an identity's gRPC and HTTP streams count together.
The identity is the subject of the verified client certificate (see ``server/auth.py``);
without mutual TLS every client is the one anonymous identity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from replog.api.wire import MAX_BATCH_RECORDS_LIMIT
from replog.errors import ResourceExhaustedError

__all__ = [
    "DEFAULT_MAX_BATCH_RECORDS",
    "DEFAULT_MAX_STREAMS_PER_IDENTITY",
    "MAX_BATCH_RECORDS_LIMIT",
    "Limits",
    "StreamSlots",
]

#: Records one produce request may hold by default (the Producer sends at most 10,000). A
#: request is one atomic batch, built and proposed in one turn of a Raft node's loop, so this
#: bounds how long that turn runs (a 300k-record batch cost the leader its heartbeats).
DEFAULT_MAX_BATCH_RECORDS = 32768
#: Streams (ConsumeStream, ConsumeBatchStream, ProduceStream, HTTP event streams) one identity
#: may hold open at once by default; an unread stream holds about 3 MiB of the server's memory.
DEFAULT_MAX_STREAMS_PER_IDENTITY = 100


class StreamSlots:
    """Counts open streams per identity and refuses one over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def open_count(self, identity: str | None) -> int:
        """How many streams ``identity`` holds open now."""
        return self._open.get(identity or "", 0)

    @contextlib.contextmanager
    def hold(self, identity: str | None) -> Iterator[None]:
        """A slot for one stream of ``identity`` (None: anonymous) while the block runs.

        Raises ResourceExhaustedError when the identity already holds ``limit`` streams.
        """
        key = identity or ""
        held = self._open.get(key, 0)
        if held >= self.limit:
            who = f"{key!r}" if key else "a client without a certificate (all share one quota)"
            raise ResourceExhaustedError(
                f"{who} already holds {held} open streams, the most allowed "
                "(max_streams_per_identity); close one first"
            )
        self._open[key] = held + 1
        try:
            yield
        finally:
            left = self._open[key] - 1
            if left:
                self._open[key] = left
            else:
                del self._open[key]


class Limits:
    """The limits both APIs apply, and the stream slots they share."""

    def __init__(
        self,
        max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS,
        max_streams_per_identity: int = DEFAULT_MAX_STREAMS_PER_IDENTITY,
    ) -> None:
        self.max_batch_records = max_batch_records
        self.streams = StreamSlots(max_streams_per_identity)
