"""The wrapper every unary gRPC handler of replog's services runs in: the draining check,
replog errors mapped to a status with their trailing metadata, unexpected errors as a bare
INTERNAL (details in the log only), and one metrics observation per call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from replog.api.status import grpc_code_for, metadata_for
from replog.api.wire import check_parsed
from replog.errors import ReplogError, UnavailableError
from replog.server.metrics import ServerMetrics

__all__ = ["UnaryHandler", "unary_handler"]

UnaryHandler = Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]


def unary_handler(
    method: str,
    fn: UnaryHandler,
    metrics: ServerMetrics,
    draining: Callable[[], bool],
    log: logging.Logger,
) -> UnaryHandler:
    """``fn`` wrapped: refused with UNAVAILABLE (not applied) while ``draining()``, its
    ReplogErrors aborted with their status and metadata, anything else INTERNAL."""

    async def handle(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        status = "OK"
        try:
            if draining():
                raise UnavailableError("the server is shutting down", certainly_not_applied=True)
            check_parsed(request)
            return await fn(request, context)
        except ReplogError as exc:
            status = grpc_code_for(exc).name
            await context.abort(grpc_code_for(exc), str(exc), trailing_metadata=metadata_for(exc))
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        except Exception:
            if context.code() is not None:  # an abort from inside the handler
                status = str(context.code().name)
                raise
            status = "INTERNAL"
            log.exception("unexpected error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal server error")
        finally:
            metrics.observe("grpc", method, status, time.perf_counter() - started)

    return handle
