"""Who is calling: the subject of a verified client certificate."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["subject_from_der", "subject_from_grpc_auth"]


def subject_from_certificate(cert: x509.Certificate) -> str | None:
    """The certificate's common name, else its first DNS or URI subject alternative name."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value.decode() if isinstance(value, bytes) else value
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for general_name in sans:
        if isinstance(general_name, x509.DNSName | x509.UniformResourceIdentifier):
            return str(general_name.value)
    return None


def subject_from_der(der: bytes | None) -> str | None:
    """The subject of a DER-encoded certificate (as an SSL object gives it), or None."""
    if not der:
        return None
    return subject_from_certificate(x509.load_der_x509_certificate(der))


def subject_from_grpc_auth(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The subject of the peer certificate in a gRPC ``context.auth_context()``, or None.

    gRPC puts the PEM certificate there only after verifying it against the server's CA.
    """
    pems = auth_context.get("x509_pem_cert")
    if not pems:
        return None
    return _subject_from_pem(pems[0])


@functools.lru_cache(maxsize=1024)
def _subject_from_pem(pem: bytes) -> str | None:
    # Every call on a connection presents the same certificate: parse it once.
    return subject_from_certificate(x509.load_pem_x509_certificate(pem))
