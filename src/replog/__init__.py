"""replog: a distributed commit log for Python.

``from replog import Log`` gives the embedded storage engine, no server needed;
``from replog import Broker`` gives topics of partitions in one directory, as a server has.

The clients (``Client``, ``AsyncClient``, ``Producer``, ``Consumer``, ``AsyncConsumer``)
load on first use, and gRPC with them: a process (``replog serve``) can set gRPC's
environment before gRPC is imported.
"""

from typing import TYPE_CHECKING, Any

from replog.broker import Broker, TopicConfig, TopicDescription
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

if TYPE_CHECKING:
    from replog.client import (
        AsyncClient,
        AsyncConsumer,
        Client,
        Consumer,
        ConsumerBatch,
        ConsumerRecord,
        Producer,
    )

__version__ = "0.1.0"

_CLIENTS = (
    "AsyncClient",
    "AsyncConsumer",
    "Client",
    "Consumer",
    "ConsumerBatch",
    "ConsumerRecord",
    "Producer",
)


def __getattr__(name: str) -> Any:
    """The clients, imported on first use (see the module docstring)."""
    if name in _CLIENTS:
        from replog import client

        return getattr(client, name)
    raise AttributeError(f"module 'replog' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the lazily imported clients included."""
    return sorted({*globals(), *_CLIENTS})


__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "AsyncConsumer",
    "BatchTooLargeError",
    "Broker",
    "Client",
    "ConfigError",
    "Consumer",
    "ConsumerBatch",
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
