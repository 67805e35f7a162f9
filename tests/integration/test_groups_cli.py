"""``replog consume --group`` and ``replog group ...`` against a real server: the group
consumer commits what it printed, describe's JSON has the documented shape, offsets are
reset (refused while the group has members), groups are listed and deleted, and each
error is one line and a non-zero exit."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time

import typer
from typer.testing import CliRunner, Result

from replog.cli import client_commands, groups
from replog.client import Client, Consumer
from tests.integration.conftest import ThreadedServer, wait_until

TOPIC = "orders"


def _app() -> typer.Typer:
    app = typer.Typer()
    client_commands.register(app)
    app.add_typer(groups.app, name="group")
    return app


def _run(server: ThreadedServer, *args: str) -> Result:
    return CliRunner().invoke(_app(), [*args, "--server", server.grpc_address])


def _one_line_error(result: Result, text: str) -> None:
    assert result.exit_code != 0, result.output
    assert text in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output


def _setup(server: ThreadedServer, records: int = 12) -> Client:
    client = Client(server.grpc_address)
    client.create_topic(TOPIC, 3)
    for i in range(records):
        client.produce(b"r%d" % i, topic=TOPIC, partition=i % 3)
    return client


def test_consume_with_a_group_prints_the_assigned_records_and_commits_them(
    server: ThreadedServer,
) -> None:
    with _setup(server) as client:
        first = _run(
            server, "consume", "--topic", TOPIC, "--group", "billing",
            "--auto-offset-reset", "earliest", "--count", "8",
        )  # fmt: skip
        assert first.exit_code == 0, first.output
        printed = first.stdout.split()
        assert len(printed) == 8
        committed = client.fetch_offsets("billing")
        assert sum(committed.values()) == 8
        rest = _run(
            server, "consume", "--topic", TOPIC, "--group", "billing", "--count", "4",
            "--format", "json",
        )  # fmt: skip
        assert rest.exit_code == 0, rest.output
        lines = [json.loads(line) for line in rest.stdout.splitlines()]
        assert {(x["topic"], x["partition"]) for x in lines} <= {(TOPIC, p) for p in range(3)}
        values = {*printed, *(base64.b64decode(x["value"]).decode() for x in lines)}
        assert values == {f"r{i}" for i in range(12)}  # at least once, nothing skipped
        assert client.fetch_offsets("billing") == {(TOPIC, p): 4 for p in range(3)}


def test_group_describe_json_has_the_documented_shape_with_lag(server: ThreadedServer) -> None:
    with _setup(server) as client:
        client.commit_offsets("billing", {(TOPIC, 0): 1, (TOPIC, 1): 4})
        with Consumer(client, "billing", [TOPIC], enable_auto_commit=False) as member:
            wait_until(lambda: len(member.assignment()) == 3, 10, "assigned")
            wait_until(lambda: client.describe_group("billing").state == "stable", 10, "stable")
            result = _run(server, "group", "describe", "billing", "--format", "json")
            assert result.exit_code == 0, result.output
            described = json.loads(result.stdout)
            assert set(described) == {"group", "generation", "members", "offsets"}
            assert described["group"] == "billing" and described["generation"] >= 1
            [one] = described["members"]
            assert set(one) == {"id", "assignment"}
            assert sorted((a["topic"], a["partition"]) for a in one["assignment"]) == [
                (TOPIC, 0), (TOPIC, 1), (TOPIC, 2),
            ]  # fmt: skip
            offsets = {(o["topic"], o["partition"]): o for o in described["offsets"]}
            assert all(
                set(o) == {"topic", "partition", "committed", "lag"} for o in offsets.values()
            )
            assert (offsets[(TOPIC, 0)]["committed"], offsets[(TOPIC, 0)]["lag"]) == (1, 3)
            assert (offsets[(TOPIC, 1)]["committed"], offsets[(TOPIC, 1)]["lag"]) == (4, 0)
            table = _run(server, "group", "describe", "billing")
            assert table.exit_code == 0 and "billing" in table.stdout and "lag" in table.stdout


def test_reset_offsets_is_refused_while_the_group_has_members_and_works_after(
    server: ThreadedServer,
) -> None:
    with _setup(server) as client:
        with Consumer(client, "billing", [TOPIC]) as member:
            wait_until(lambda: len(member.assignment()) == 3, 10, "assigned")
            busy = _run(server, "group", "reset-offsets", "billing", "--topic", TOPIC,
                        "--to-earliest")  # fmt: skip
            _one_line_error(busy, "members")
        latest = _run(server, "group", "reset-offsets", "billing", "-t", TOPIC, "--to-latest")
        assert latest.exit_code == 0, latest.output
        assert client.fetch_offsets("billing") == {(TOPIC, p): 4 for p in range(3)}
        _run(server, "group", "reset-offsets", "billing", "-t", TOPIC, "--to-offset", "2")
        assert client.fetch_offsets("billing") == {(TOPIC, p): 2 for p in range(3)}
        _run(server, "group", "reset-offsets", "billing", "-t", TOPIC, "--to-earliest")
        assert client.fetch_offsets("billing") == {(TOPIC, p): 0 for p in range(3)}
        both = _run(server, "group", "reset-offsets", "billing", "-t", TOPIC,
                    "--to-earliest", "--to-latest")  # fmt: skip
        _one_line_error(both, "exactly one")


def test_reset_to_time_lands_on_the_first_record_appended_at_or_after_it(
    server: ThreadedServer,
) -> None:
    with _setup(server, records=6) as client:
        # the timestamps are the server's append times: the later records come after the cut
        cut = int(time.time() * 1000) + 1
        wait_until(lambda: int(time.time() * 1000) > cut, 2, "the clock passed the cut")
        for i in range(6, 12):
            client.produce(b"r%d" % i, topic=TOPIC, partition=i % 3)
        result = _run(server, "group", "reset-offsets", "g", "-t", TOPIC, "--to-time", str(cut))
        assert result.exit_code == 0, result.output
        assert client.fetch_offsets("g") == {(TOPIC, p): 2 for p in range(3)}
        bad = _run(server, "group", "reset-offsets", "g", "-t", TOPIC, "--to-time", "noon")
        _one_line_error(bad, "--to-time")


def test_group_list_and_delete_and_their_errors(server: ThreadedServer) -> None:
    with _setup(server) as client:
        client.commit_offsets("a-group", {(TOPIC, 0): 1})
        client.commit_offsets("b-group", {(TOPIC, 1): 1})
        listed = _run(server, "group", "list", "--format", "json")
        assert listed.exit_code == 0, listed.output
        assert [g["group"] for g in json.loads(listed.stdout)] == ["a-group", "b-group"]
        with Consumer(client, "a-group", [TOPIC]) as member:
            wait_until(member.assignment, 10, "joined")
            _one_line_error(_run(server, "group", "delete", "a-group"), "members")
        deleted = _run(server, "group", "delete", "a-group")
        assert deleted.exit_code == 0, deleted.output
        assert [g.group for g in client.list_groups()] == ["b-group"]
        _one_line_error(_run(server, "group", "delete", "no-such"), "no-such")
        _one_line_error(_run(server, "group", "describe", "no-such"), "no-such")
        _one_line_error(_run(server, "group", "list", "--format", "xml"), "--format")


def test_ctrl_c_on_a_group_consume_commits_what_was_printed_and_leaves(
    server: ThreadedServer,
) -> None:
    with _setup(server) as client:
        command = [
            sys.executable, "-c", "from replog.cli.app import main; main()",
            "consume", "--topic", TOPIC, "--group", "billing",
            "--auto-offset-reset", "earliest", "--server", server.grpc_address,
        ]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: list[bytes] = []
        out = proc.stdout
        assert out is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(out.readline, b"")))
        try:
            reader.start()
            wait_until(lambda: len(lines) == 12, 30, "every record printed")
            wait_until(lambda: client.describe_group("billing").members, 10, "a member")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(10)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        assert sorted(lines) == sorted(b"r%d\n" % i for i in range(12))
        assert client.fetch_offsets("billing") == {(TOPIC, p): 4 for p in range(3)}
        assert client.describe_group("billing").members == ()


def test_consume_with_a_group_refuses_the_single_partition_options(
    server: ThreadedServer,
) -> None:
    for extra in (["--offset", "3"], ["--partition", "1"], ["--follow"]):
        result = _run(server, "consume", "--topic", TOPIC, "--group", "g", *extra)
        _one_line_error(result, "do not apply with --group")
