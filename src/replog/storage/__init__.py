"""The storage engine: records in segments of a store file and an index, on one disk.

It knows nothing of networks, Raft or servers.
"""

from replog.storage.config import LogConfig, SyncPolicy
from replog.storage.log import Log
from replog.storage.memory import MemoryLog
from replog.storage.retention import RetentionResult, SegmentInfo, segments_to_delete

__all__ = [
    "Log",
    "LogConfig",
    "MemoryLog",
    "RetentionResult",
    "SegmentInfo",
    "SyncPolicy",
    "segments_to_delete",
]
