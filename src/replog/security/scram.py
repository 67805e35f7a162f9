"""SCRAM credentials (RFC 5802, RFC 7677) and the file of Kafka SASL users that holds them.

A user's password is never stored: each line keeps what Kafka keeps for SCRAM, the salt,
the iteration count, StoredKey and ServerKey, for one mechanism::

    alice SCRAM-SHA-256 salt=<base64>,stored_key=<base64>,server_key=<base64>,iterations=4096

``replog kafka-user add`` writes a line for each of SCRAM-SHA-256 and SCRAM-SHA-512. PLAIN
checks a password against the same entry by recomputing StoredKey from its salt and
iteration count. The file is written atomically with mode 0600 and never through a link."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from replog.errors import ConfigError

__all__ = [
    "MECHANISMS",
    "USER_NAME",
    "ScramCredential",
    "derive",
    "format_users",
    "parse_users",
    "read_users",
    "salted_password",
    "write_users",
]

#: SCRAM mechanism name -> hashlib name.
MECHANISMS: Mapping[str, str] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
#: What a user name may be: it is also the identity the ACL names, so no spaces, commas or "*".
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,255}")
DEFAULT_ITERATIONS = 4096  # Kafka's minimum and its tools' default
_MAX_ITERATIONS = 1_000_000
_MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the server keeps of one user's password for one SCRAM mechanism."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @property
    def hash_name(self) -> str:
        """The hashlib name of the mechanism's hash function."""
        return MECHANISMS[self.mechanism]

    def matches(self, password: str) -> bool:
        """Whether ``password`` is the one this credential was derived from."""
        again = derive(self.mechanism, password, self.salt, self.iterations)
        return hmac.compare_digest(again.stored_key, self.stored_key)


def salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """RFC 5802's SaltedPassword: Hi(Normalize(password), salt, i) (PBKDF2-HMAC); the
    password is taken as UTF-8 as given (Kafka does not apply SASLprep either)."""
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def derive(
    mechanism: str, password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredential:
    """The credential of ``password`` for ``mechanism`` (a fresh random salt when none)."""
    hash_name = MECHANISMS[mechanism]
    salt = secrets.token_bytes(32) if salt is None else salt
    salted = salted_password(hash_name, password, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    server_key = hmac.digest(salted, b"Server Key", hash_name)
    stored_key = hashlib.new(hash_name, client_key).digest()
    return ScramCredential(mechanism, salt, iterations, stored_key, server_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def format_users(users: Mapping[str, Mapping[str, ScramCredential]]) -> str:
    """The text of a users file holding ``users`` (name -> mechanism -> credential)."""
    lines = ["# replog Kafka SASL users (replog kafka-user add NAME); no passwords are kept"]
    for name in sorted(users):
        for mechanism in sorted(users[name]):
            c = users[name][mechanism]
            lines.append(
                f"{name} {mechanism} salt={_b64(c.salt)},stored_key={_b64(c.stored_key)},"
                f"server_key={_b64(c.server_key)},iterations={c.iterations}"
            )
    return "\n".join(lines) + "\n"


def _parse_line(number: int, line: str) -> tuple[str, ScramCredential]:
    parts = line.split()
    if len(parts) != 3 or not USER_NAME.fullmatch(parts[0]) or parts[1] not in MECHANISMS:
        raise ConfigError(f"line {number}: expected NAME SCRAM-SHA-256|SCRAM-SHA-512 FIELDS")
    try:
        fields = dict(item.split("=", 1) for item in parts[2].split(","))
        salt = base64.b64decode(fields["salt"], validate=True)
        stored = base64.b64decode(fields["stored_key"], validate=True)
        server = base64.b64decode(fields["server_key"], validate=True)
        iterations = int(fields["iterations"])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"line {number}: a field is missing or malformed ({exc})") from None
    size = hashlib.new(MECHANISMS[parts[1]]).digest_size
    if not 1 <= iterations <= _MAX_ITERATIONS or len(stored) != size or len(server) != size:
        raise ConfigError(f"line {number}: iterations or key lengths out of range")
    if not salt:
        raise ConfigError(f"line {number}: empty salt")
    return parts[0], ScramCredential(parts[1], salt, iterations, stored, server)


def parse_users(text: str) -> dict[str, dict[str, ScramCredential]]:
    """The users in a file's text; ConfigError naming the first bad line."""
    users: dict[str, dict[str, ScramCredential]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, credential = _parse_line(number, line)
        users.setdefault(name, {})[credential.mechanism] = credential
    return users


def _refuse_link(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise ConfigError(
            f"{path} is a symbolic link; the users file is never followed through one"
        )
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path} is not a regular file")


def read_users(path: str | Path) -> dict[str, dict[str, ScramCredential]]:
    """The users of the file at ``path`` (ConfigError: missing, a link, too big, or bad)."""
    path = Path(path)
    _refuse_link(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the Kafka users file {path}: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigError(f"the Kafka users file {path} is over {_MAX_FILE_BYTES} bytes")
    try:
        return parse_users(data.decode())
    except UnicodeDecodeError:
        raise ConfigError(f"the Kafka users file {path} is not UTF-8") from None
    except ConfigError as exc:
        raise ConfigError(f"the Kafka users file {path}, {exc}") from None


def write_users(path: str | Path, users: Mapping[str, Mapping[str, ScramCredential]]) -> None:
    """Replace the file at ``path`` with ``users``, atomically (a new 0600 file renamed over
    it, fsynced); ConfigError when ``path`` is a symbolic link or cannot be written."""
    path = Path(path)
    _refuse_link(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        with os.fdopen(os.open(tmp, flags, 0o600), "wb") as f:
            f.write(format_users(users).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the Kafka users file {path}: {exc.strerror}") from None
