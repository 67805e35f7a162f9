"""The replog client: ``Client``, ``AsyncClient`` and the batching ``Producer``.

Imports only ``replog.v1`` and ``replog.errors`` (never storage or server).
"""

from replog.client.admin import PartitionDescription, TopicDescription
from replog.client.async_client import AsyncClient
from replog.client.client import Client, ServerAddress
from replog.client.core import Batch, Offset, RetryPolicy
from replog.client.producer import Producer

__all__ = [
    "AsyncClient",
    "Batch",
    "Client",
    "Offset",
    "PartitionDescription",
    "Producer",
    "RetryPolicy",
    "ServerAddress",
    "TopicDescription",
]
