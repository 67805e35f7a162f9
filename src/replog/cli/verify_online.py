"""``replog verify --topic T --partition P --key PUBKEY [--state FILE]``: audit one partition
of a running server, through the client's verified reads.

Every record from the partition's lowest offset to its next offset when the audit starts is
read with ``verify=True``: each batch is proven in a checkpoint signed by the key, and each
newer checkpoint consistent with the last one trusted (kept in ``--state`` between runs, as
a witness would). Records retention already deleted cannot be re-read; the tree still
vouches for them, and the checkpoints' consistency covers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from replog.broker.names import DEFAULT_TOPIC
from replog.client import Client
from replog.errors import InvalidArgumentError, VerificationError

__all__ = ["AuditReport", "audit_partition"]

_BATCH_RECORDS = 2000


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What an audit checked: records ``[lowest, end)`` of the partition, ``records`` of
    them served (a cluster's control records are not)."""

    lowest: int
    end: int
    records: int


def audit_partition(
    client: Client,
    topic: str,
    partition: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Read and prove every record of ``topic`` ``partition`` that exists now (the client
    must have a ``verify_key``); VerificationError names the first offset that fails.
    ``on_progress(done, total)`` after each batch."""
    described = client.describe_topic(topic or DEFAULT_TOPIC)
    if not 0 <= partition < len(described.partitions):
        raise InvalidArgumentError(
            f"topic {described.name} has {len(described.partitions)} partitions; "
            f"there is no partition {partition}"
        )
    state = described.partitions[partition]
    lowest, end = state.lowest_offset, state.next_offset
    offset, records = lowest, 0
    while offset < end:
        batch = client.consume_batch(
            offset,
            min(_BATCH_RECORDS, end - offset),
            topic=topic,
            partition=partition,
            verify=True,
        )
        records += len(batch.records)
        after = batch.records[-1].offset + 1 if batch.records else offset
        moved = max(after, batch.next_offset or 0)
        if moved <= offset:  # an audit that cannot read a record it was told of fails
            raise VerificationError(
                f"the server serves no record at offset {offset}, below the next offset "
                f"{end} it reported",
                offset=offset,
            )
        offset = moved
        if on_progress is not None:
            on_progress(min(offset, end) - lowest, end - lowest)
    return AuditReport(lowest, end, records)
