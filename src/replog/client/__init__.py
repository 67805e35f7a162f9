"""The replog client: ``Client``, ``AsyncClient`` and the batching ``Producer``.

Imports only ``replog.v1`` and ``replog.errors`` (never storage or server).
"""

from replog.client.admin import PartitionDescription, TopicDescription
from replog.client.async_client import AsyncClient
from replog.client.async_consumer import AsyncConsumer
from replog.client.client import Client, ServerAddress
from replog.client.consumer import Consumer
from replog.client.consumer_state import ConsumerBatch, ConsumerRecord, ConsumerRecords
from replog.client.core import Batch, Offset, RetryPolicy
from replog.client.groups import GroupDescription, GroupListing, GroupMember, PartitionLag
from replog.client.producer import Producer

__all__ = [
    "AsyncClient",
    "AsyncConsumer",
    "Batch",
    "Client",
    "Consumer",
    "ConsumerBatch",
    "ConsumerRecord",
    "ConsumerRecords",
    "GroupDescription",
    "GroupListing",
    "GroupMember",
    "PartitionLag",
    "Offset",
    "PartitionDescription",
    "Producer",
    "RetryPolicy",
    "ServerAddress",
    "TopicDescription",
]
