"""Many partitions on one disk: topics, their configuration, the partitioner, retention and
each partition's key index.

The embedded ``Broker`` lives here; it knows nothing of networks or Raft.
"""

from __future__ import annotations

from replog.broker.broker import Broker, RetentionEvent
from replog.broker.config import TOPIC_CONFIG_KEYS, TopicConfig
from replog.broker.key_index import KeyIndex
from replog.broker.key_source import KeySource, LogKeySource
from replog.broker.model import PartitionDescription, TopicDescription
from replog.broker.names import DEFAULT_TOPIC

__all__ = [
    "DEFAULT_TOPIC",
    "TOPIC_CONFIG_KEYS",
    "Broker",
    "KeyIndex",
    "KeySource",
    "LogKeySource",
    "PartitionDescription",
    "RetentionEvent",
    "TopicConfig",
    "TopicDescription",
]
