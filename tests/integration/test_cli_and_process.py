"""The CLI client commands, and ``replog serve`` as a real process (graceful shutdown)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import Future

import typer
from typer.testing import CliRunner

from replog import Client, Producer, ReplogError
from replog.cli import client_commands
from replog.client import RetryPolicy
from tests.integration.conftest import ThreadedServer
from tests.integration.test_client import free_port


def cli_app() -> typer.Typer:
    app = typer.Typer()
    client_commands.register(app)
    app.command("noop")(lambda: None)  # keep sub-command names with two+ commands
    return app


def test_produce_values_then_consume_raw_and_json(server: ThreadedServer) -> None:
    runner = CliRunner()
    app = cli_app()
    result = runner.invoke(app, ["produce", "--server", server.grpc_address, "a", "b"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["0", "1"]
    result = runner.invoke(app, ["produce", "-s", server.grpc_address], input="c\nd\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["consume", "--offset", "1", "-s", server.grpc_address])
    assert (result.exit_code, result.stdout) == (0, "b\nc\nd\n")
    result = runner.invoke(
        app, ["consume", "--count", "1", "--format", "json", "-s", server.grpc_address]
    )
    assert json.loads(result.stdout)["offset"] == 0
    result = runner.invoke(app, ["servers", "-s", server.grpc_address])
    assert result.exit_code == 0 and server.grpc_address in result.stdout


def test_consume_follow_stops_after_count(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        client.produce(b"x")
        timer = threading.Timer(0.2, client.produce, (b"y",))
        timer.start()
        result = CliRunner().invoke(
            cli_app(), ["consume", "-f", "--count", "2", "-s", server.grpc_address]
        )
        timer.join()
    assert (result.exit_code, result.stdout) == (0, "x\ny\n")


def test_user_mistakes_print_one_line_and_exit_non_zero(server: ThreadedServer) -> None:
    runner = CliRunner()
    app = cli_app()
    cases = [
        (["consume", "--offset", "5", "-s", server.grpc_address], "out of range"),
        (["servers", "-s", "not-an-address"], "HOST:PORT"),
        (["produce", "x", "-s", f"127.0.0.1:{free_port()}"], "unavailable"),
    ]
    for args, text in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert text in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_the_replog_command_serves_and_shuts_down_without_losing_acks(
    process_factory, tmp_path
) -> None:
    data = tmp_path / "data"
    proc = process_factory(data)
    acked: dict[int, bytes] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce_forever() -> None:
        client = Client(proc.grpc_address, retry=RetryPolicy(max_attempts=1), timeout=10)
        with Producer(
            client, linger_ms=1, max_batch_records=200, delivery_timeout_ms=5000
        ) as producer:
            i = 0
            while not stop.is_set():
                value = b"value-%d" % i
                future: Future[int] = producer.send(value)
                future.add_done_callback(
                    lambda f, v=value: (
                        acked.__setitem__(f.result(), v)
                        if f.exception() is None
                        else errors.append(f.exception())
                    )
                )
                i += 1
        client.close()

    thread = threading.Thread(target=produce_forever)
    thread.start()
    from tests.integration.conftest import wait_until

    wait_until(lambda: len(acked) > 2000, timeout=30, what="some acknowledged records")
    assert proc.terminate() == 0
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "the producer did not finish after its delivery timeout"
    assert all(isinstance(e, ReplogError) for e in errors)

    # A CLI subprocess against the restarted server sees every acknowledged record.
    proc2 = process_factory(data)
    with Client(proc2.grpc_address) as client:
        for offset, value in acked.items():
            assert client.consume(offset).value == value
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from replog.cli.app import main; main()",
            "consume",
            "--count",
            "3",
            "--server",
            proc2.grpc_address,
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split(b"\n")[:3] == [acked[0], acked[1], acked[2]]
    assert proc2.terminate() == 0
