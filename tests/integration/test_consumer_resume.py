"""Consumer.resume() of a partition that is not paused kept it fetching (a review found it
stopped it for good), and a resume refused for a partition not assigned resumes nothing.

The defect: ConsumerState.resume moved every partition it was given to a new fetch
generation but returned (to start fetching) only the paused ones, so a running partition
passed to resume() -- resume(consumer.assignment()) is the natural call -- lost its fetch;
and it un-paused partitions before refusing one not assigned.
"""

from __future__ import annotations

import asyncio

import pytest

import replog
from replog.client import Client, Consumer
from replog.errors import InvalidArgumentError
from tests.integration.conftest import ThreadedServer, wait_until

TOPIC = "orders"


def test_resume_of_an_unpaused_partition_keeps_it_fetching(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        client.create_topic(TOPIC, 1)
        client.produce(b"first", topic=TOPIC, partition=0)
        with Consumer(client, "g", [TOPIC], auto_offset_reset="earliest") as consumer:
            first = consumer.poll(10)
            assert first is not None and first.value == b"first"
            consumer.resume([(TOPIC, 0)])  # never paused: should be a no-op
            client.produce(b"second", topic=TOPIC, partition=0)
            second = consumer.poll(5)
            assert second is not None and second.value == b"second", (
                "resume() of an unpaused partition stalled it"
            )


def test_async_resume_of_an_unpaused_partition_keeps_it_fetching(server: ThreadedServer) -> None:
    async def run() -> object:
        async with replog.AsyncClient(server.grpc_address) as client:
            await client.create_topic(TOPIC, 1)
            await client.produce(b"first", topic=TOPIC, partition=0)
            async with replog.AsyncConsumer(
                client, "g", [TOPIC], auto_offset_reset="earliest"
            ) as consumer:
                first = await consumer.poll(10)
                assert first is not None
                await consumer.resume([(TOPIC, 0)])
                await client.produce(b"second", topic=TOPIC, partition=0)
                return await consumer.poll(5)

    second = asyncio.run(asyncio.wait_for(run(), 30))
    assert second is not None and second.value == b"second", "resume() stalled the partition"


def test_a_failed_resume_does_not_leave_a_paused_partition_unfetchable(
    server: ThreadedServer,
) -> None:
    """resume([paused, not_assigned]) raises InvalidArgumentError -- after ConsumerState.resume
    already unpaused the first one, so Consumer.resume never starts its fetch; a later
    resume() of it does nothing (it is no longer paused): the partition is dead."""
    with Client(server.grpc_address) as client:
        client.create_topic(TOPIC, 1)
        with Consumer(client, "g2", [TOPIC], auto_offset_reset="earliest") as consumer:
            wait_until(lambda: len(consumer.assignment()) == 1, 10, "assigned")
            consumer.pause([(TOPIC, 0)])
            with pytest.raises(InvalidArgumentError):
                consumer.resume([(TOPIC, 0), (TOPIC, 7)])
            consumer.resume([(TOPIC, 0)])  # retry with the valid one only
            client.produce(b"after", topic=TOPIC, partition=0)
            record = consumer.poll(5)
            assert record is not None and record.value == b"after", "the partition is dead"
