"""A VerificationError reaches clients as data loss (gRPC DATA_LOSS, HTTP 500) with its code
and the offset it names, never as an unexplained internal error."""

from __future__ import annotations

import grpc

from replog.api.status import grpc_code_for, http_status_for, metadata_for
from replog.errors import VerificationError


def test_a_verification_failure_is_data_loss_naming_its_offset() -> None:
    exc = VerificationError("tile tile/0/002 does not match its records", offset=700)
    assert grpc_code_for(exc) == grpc.StatusCode.DATA_LOSS
    assert http_status_for(exc) == 500
    assert metadata_for(exc) == (
        ("replog-error-code", "VERIFICATION_FAILED"),
        ("replog-offset", "700"),
    )


def test_a_verification_failure_without_an_offset_sends_only_its_code() -> None:
    assert metadata_for(VerificationError("bad signature")) == (
        ("replog-error-code", "VERIFICATION_FAILED"),
    )
