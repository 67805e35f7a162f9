"""replog: a distributed commit log for Python.

``from replog import Log`` gives the embedded storage engine, no server needed;
``from replog import Broker`` gives topics of partitions in one directory, as a server has.
"""

from replog.broker import Broker, TopicConfig, TopicDescription
from replog.client import AsyncClient, AsyncConsumer, Client, Consumer, ConsumerRecord, Producer
from replog.errors import (
    AlreadyExistsError,
    BatchTooLargeError,
    ConfigError,
    CorruptRecordError,
    DeadlineExceededError,
    InvalidArgumentError,
    LogClosedError,
    LogLockedError,
    NotFoundError,
    OffsetOutOfRangeError,
    PermissionDeniedError,
    RecordTooLargeError,
    ReplogError,
    ServerError,
    StorageIOError,
    UnauthenticatedError,
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
    UnsupportedError,
    VerificationError,
)
from replog.storage import Log, LogConfig, MemoryLog, RetentionResult, SegmentInfo
from replog.v1.record_pb2 import Header, Record

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "AsyncConsumer",
    "BatchTooLargeError",
    "Broker",
    "Client",
    "ConfigError",
    "Consumer",
    "ConsumerRecord",
    "CorruptRecordError",
    "DeadlineExceededError",
    "Header",
    "InvalidArgumentError",
    "Log",
    "LogClosedError",
    "LogConfig",
    "LogLockedError",
    "MemoryLog",
    "NotFoundError",
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
    "TopicConfig",
    "TopicDescription",
    "UnauthenticatedError",
    "UnavailableError",
    "UnknownPartitionError",
    "UnknownTopicError",
    "UnsupportedError",
    "VerificationError",
    "__version__",
]
