"""Re-exports ``replog.api.status`` (where errors become gRPC and HTTP statuses) under its old
name, for the edges and tests that import it from here."""

from replog.api.status import grpc_code_for, http_status_for, metadata_for

__all__ = ["grpc_code_for", "http_status_for", "metadata_for"]
