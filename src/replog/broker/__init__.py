"""Many partitions on one disk: topics, their configuration, the partitioner and retention.

The embedded ``Broker`` lives here; it knows nothing of networks or Raft.
"""

from __future__ import annotations

from replog.broker.model import PartitionDescription, TopicDescription

__all__ = ["PartitionDescription", "TopicDescription"]
