"""replog: a distributed commit log for Python.

``from replog import Log`` gives the embedded storage engine, no server needed.
"""

from replog.client import AsyncClient, Client, Producer
from replog.errors import (
    BatchTooLargeError,
    ConfigError,
    CorruptRecordError,
    DeadlineExceededError,
    InvalidArgumentError,
    LogClosedError,
    LogLockedError,
    OffsetOutOfRangeError,
    PermissionDeniedError,
    RecordTooLargeError,
    ReplogError,
    ServerError,
    StorageIOError,
    UnauthenticatedError,
    UnavailableError,
)
from replog.storage import Log, LogConfig, MemoryLog, RetentionResult, SegmentInfo
from replog.v1.record_pb2 import Header, Record

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "BatchTooLargeError",
    "Client",
    "ConfigError",
    "CorruptRecordError",
    "DeadlineExceededError",
    "Header",
    "InvalidArgumentError",
    "Log",
    "LogClosedError",
    "LogConfig",
    "LogLockedError",
    "MemoryLog",
    "OffsetOutOfRangeError",
    "PermissionDeniedError",
    "Producer",
    "Record",
    "RecordTooLargeError",
    "ReplogError",
    "RetentionResult",
    "SegmentInfo",
    "ServerError",
    "StorageIOError",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
]
