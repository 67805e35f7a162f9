"""replog: a distributed commit log for Python.

``from replog import Log`` gives the embedded storage engine, no server needed.
"""

from replog.errors import (
    ConfigError,
    CorruptRecordError,
    InvalidArgumentError,
    LogClosedError,
    LogLockedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    ReplogError,
    StorageIOError,
)
from replog.storage import Log, LogConfig, MemoryLog
from replog.v1.record_pb2 import Header, Record

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CorruptRecordError",
    "Header",
    "InvalidArgumentError",
    "Log",
    "LogClosedError",
    "LogConfig",
    "LogLockedError",
    "MemoryLog",
    "OffsetOutOfRangeError",
    "Record",
    "RecordTooLargeError",
    "ReplogError",
    "StorageIOError",
    "__version__",
]
