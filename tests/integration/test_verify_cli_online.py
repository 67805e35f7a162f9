"""``replog verify --topic T --partition P --key PUBKEY [--state FILE]`` against a running
server that signs checkpoints: an honest partition exits 0 naming what it checked; a wrong
key, a forked history after the state file trusted another, and a bad partition each give
one line and a non-zero exit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from replog.cli.app import _register, app
from replog.client import Client
from replog.tlog.keyfile import KeyFiles, write_key_files
from tests.integration.conftest import ThreadedServer
from tests.integration.test_verified_reads import produce_numbered, signed, signing_server

_register()


def _verify(server: ThreadedServer, key: Path, *extra: str) -> tuple[int, str]:
    args = ["verify", "--server", server.grpc_address, "--key", str(key), *extra]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    return result.exit_code, result.output


def test_an_honest_partition_verifies_and_a_wrong_key_fails(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    other: KeyFiles = write_key_files(tmp_path / "other", "n1")
    data = tmp_path / "data"
    server = signing_server(server_factory, data, keys)
    with Client(server.grpc_address) as client:
        produce_numbered(client, 0, 2500)  # more than one audit batch
        client.create_topic("orders", 2)
        client.produce_batch([b"a", b"b"], topic="orders", partition=1)
    signed(data, 2500)
    code, out = _verify(server, keys.public)
    assert code == 0, out
    assert "ok default/0: 2500 records verified, offsets 0..2499" in out
    code, out = _verify(server, keys.public, "--topic", "orders", "--partition", "1")
    assert code == 0 and "ok orders/1: 2 records verified" in out, out
    code, out = _verify(server, other.public)
    assert code == 1 and "FAIL default/0" in out and "Traceback" not in out, out
    code, out = _verify(server, keys.public, "--topic", "orders", "--partition", "7")
    assert code == 1 and "no partition 7" in out and "Traceback" not in out, out


def test_the_state_file_makes_a_later_audit_of_a_fork_fail(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    state = tmp_path / "auditor.json"
    server = signing_server(server_factory, tmp_path / "a", keys)
    with Client(server.grpc_address) as client:
        produce_numbered(client, 0, 100)
    signed(tmp_path / "a", 100)
    code, out = _verify(server, keys.public, "--state", str(state))
    assert code == 0 and state.exists(), out
    server.stop()
    forked = signing_server(server_factory, tmp_path / "b", keys)  # the same key, another history
    with Client(forked.grpc_address) as client:
        produce_numbered(client, 0, 150, tag="other")
    signed(tmp_path / "b", 150)
    assert _verify(forked, keys.public)[0] == 0  # alone, the fork is a valid log
    code, out = _verify(forked, keys.public, "--state", str(state))
    assert code == 1 and "FAIL default/0" in out and "Traceback" not in out, out
