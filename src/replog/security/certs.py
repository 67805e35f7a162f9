"""Development certificates: a CA, a node certificate and client certificates.

Made with the ``cryptography`` package (no external tools). For production, use your own
CA; docs/operations.md says how.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from replog.errors import InvalidArgumentError

__all__ = ["CertificateAuthority", "IssuedCert", "write_dev_pki"]

DEFAULT_VALID_DAYS = 365
NODE_SUBJECT = "replog-node"
_DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class IssuedCert:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_entries(names: list[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, common_name: str = "replog development CA") -> None:
        self.key = _new_key()
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=10 * DEFAULT_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM-encoded (what peers trust)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        sans: list[str] | None = None,
        server: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> IssuedCert:
        """Issue a certificate for ``common_name`` (client use; also server use if ``server``)."""
        if not common_name:
            raise InvalidArgumentError("a certificate needs a common name")
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=DEFAULT_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_san_entries(sans)), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _write(path: Path, data: bytes, *, private: bool, force: bool) -> None:
    """Create ``path`` anew with ``data``, never writing through what is already there.

    Without ``force`` the file must not exist: O_EXCL refuses any name, a symlink (even a
    dangling one) included. With ``force`` the data goes to a new temporary file that is
    then renamed over ``path``, which replaces a symlink itself, never its target.
    """
    mode = 0o600 if private else 0o644
    target = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp") if force else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise InvalidArgumentError(_exists(path)) from None
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits off a public certificate
        os.write(fd, data)
    except OSError:
        if force:
            target.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    if force:
        try:
            os.replace(target, path)
        except OSError:
            target.unlink(missing_ok=True)
            raise


def _exists(path: Path) -> str:
    kind = "a symlink" if path.is_symlink() else "a file"
    return f"{path} already exists ({kind}); give --force to replace the files in {path.parent}"


def _dev_pki_paths(out: Path, users: list[str]) -> list[Path]:
    """The files ``write_dev_pki`` writes into ``out`` for ``users``, in its order."""
    stems = ["ca", "node", *users]
    return [out / name for stem in stems for name in (f"{stem}.pem", f"{stem}-key.pem")]


def write_dev_pki(
    out: Path, *, hosts: list[str], users: list[str], force: bool = False
) -> list[Path]:
    """Write a development CA, a node certificate and one client certificate per user.

    The node certificate (``node.pem``, subject ``replog-node``) has the SANs localhost,
    127.0.0.1, ::1 and ``hosts``, and serves as both server and client certificate for
    node-to-node traffic. Private keys are written with mode 0600. Any of the files that
    already exists (a symlink included) is refused with InvalidArgumentError before anything
    is written, unless ``force``, which replaces them (a symlink itself, never its target).
    Returns the paths.
    """
    users = list(dict.fromkeys(users))  # a user named twice gets one certificate
    for user in users:
        if not user or "/" in user or user.startswith("."):
            raise InvalidArgumentError(f"user name {user!r} cannot name a certificate file")
        if user in ("ca", "node"):
            raise InvalidArgumentError(f"user name {user!r} would overwrite the {user} files")
    if not force:
        for path in _dev_pki_paths(out, users):
            if os.path.lexists(path):
                raise InvalidArgumentError(_exists(path))
    out.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority()
    written: list[Path] = []

    def save(stem: str, cert_pem: bytes, key_pem: bytes | None) -> None:
        _write(out / f"{stem}.pem", cert_pem, private=False, force=force)
        written.append(out / f"{stem}.pem")
        if key_pem is not None:
            _write(out / f"{stem}-key.pem", key_pem, private=True, force=force)
            written.append(out / f"{stem}-key.pem")

    save("ca", ca.cert_pem, _key_pem(ca.key))
    node = ca.issue(NODE_SUBJECT, sans=[*_DEFAULT_SANS, *hosts], server=True)
    save("node", node.cert_pem, node.key_pem)
    for user in users:
        issued = ca.issue(user)
        save(user, issued.cert_pem, issued.key_pem)
    return written
