"""``replog cluster`` against a single node: a one-node cluster, membership changes refused."""

from __future__ import annotations

import functools

import typer
from typer.testing import CliRunner

from replog.cli.app import _register, app
from tests.integration.conftest import ThreadedServer
from tests.integration.test_client import free_port


@functools.cache
def full_app() -> typer.Typer:
    _register()
    return app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(full_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cluster_status_on_a_single_node_shows_a_one_node_cluster_it_leads(
    server: ThreadedServer,
) -> None:
    code, out, err = run("cluster", "status", "--server", server.grpc_address)
    assert code == 0, err
    assert "Method not found" not in out + err
    assert "(leader)" in out and server.grpc_address in out


def test_cluster_status_takes_the_comma_separated_server_list_and_skips_a_dead_one(
    server: ThreadedServer,
) -> None:
    servers = f"127.0.0.1:{free_port()},{server.grpc_address}"
    code, out, err = run("cluster", "status", "--server", servers)
    assert code == 0, err
    assert "(leader)" in out and server.grpc_address in out


def test_membership_changes_on_a_single_node_are_refused_in_one_line(
    server: ThreadedServer,
) -> None:
    for args in (("remove", "n2"), ("transfer-leader",), ("decommission", "n2")):
        code, out, err = run("cluster", *args, "--server", server.grpc_address)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, (args, out, err)
        assert lines[0].startswith("replog: error: ") and "single node" in lines[0], lines
        assert "Traceback" not in err


def test_cluster_status_when_no_server_answers_is_one_line(tmp_path: object) -> None:
    code, _, err = run("cluster", "status", "--server", f"127.0.0.1:{free_port()}")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("replog: error: "), err
