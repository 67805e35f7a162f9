"""`replog log dump` and `replog log check`, on real log directories in tmp_path."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from replog import Log, LogConfig
from replog.cli.log_tools import app, check_log

SMALL = LogConfig(max_store_bytes=1024, max_record_bytes=512, sync="never")
RECORDS = 100
runner = CliRunner(env={"COLUMNS": "200"})


def value_of(i: int) -> bytes:
    return bytes([0xFF, i]) if i % 7 == 0 else f"value {i}".encode()


def fill(log: Log, count: int = RECORDS) -> None:
    for i in range(count):
        if i % 10 == 0:
            log.append(value_of(i), key=f"key-{i}".encode(), headers={"h": b"\x00", "t": b"x"})
        else:
            log.append(value_of(i))


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "log"
    with Log(directory, SMALL) as log:
        fill(log)
        assert log.segment_count >= 3
    return directory


def stores(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.store"))


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def invoke(*args: str) -> Result:
    return runner.invoke(app, [*args])


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


# -- dump -------------------------------------------------------------------------------------


def test_dump_prints_every_record_in_order_as_text(log_dir: Path) -> None:
    result = invoke("dump", str(log_dir))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == RECORDS
    assert lines[1].startswith("offset: 1 ")
    assert lines[1].endswith('value: "value 1"')
    assert "value: b'\\xff\\x07'" in lines[7]
    assert 'key: "key-10" headers: {"h": b\'\\x00\', "t": "x"}' in lines[10]
    assert "term:" not in result.stdout


def test_dump_range_crosses_segments_and_stops_after_count(log_dir: Path) -> None:
    result = invoke("dump", str(log_dir), "--from", "33", "--count", "10")
    assert result.exit_code == 0, result.output
    offsets = [int(line.split()[1]) for line in result.stdout.splitlines()]
    assert offsets == list(range(33, 43))


def test_dump_json_round_trips_keys_headers_and_binary_values(log_dir: Path) -> None:
    result = invoke("dump", str(log_dir), "--format", "json", "--from", "70", "--count", "2")
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["offset"] == 70
    assert base64.b64decode(first["value"]) == value_of(70)
    assert first["value_encoding"] == "base64"
    assert first["key"] == "key-70"
    assert first["headers"] == [
        {"key": "h", "value": "AA==", "value_encoding": "base64"},
        {"key": "t", "value": "x", "value_encoding": "utf8"},
    ]
    assert first["timestamp_ms"] > 0
    assert second == {
        "offset": 71,
        "position": second["position"],
        "timestamp_ms": second["timestamp_ms"],
        "value": "value 71",
        "value_encoding": "utf8",
    }


def test_dump_at_the_end_prints_nothing_and_past_it_fails(log_dir: Path) -> None:
    at_end = invoke("dump", str(log_dir), "--from", str(RECORDS))
    assert at_end.exit_code == 0 and at_end.stdout == ""
    past = invoke("dump", str(log_dir), "--from", str(RECORDS + 5))
    assert_one_line_error(past, f"valid offsets are 0..{RECORDS - 1}")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--from", "x"], "--from must be an integer"),
        (["--count", "-1"], "--count must be at least 0"),
        (["--format", "xml"], "--format must be text or json"),
    ],
)
def test_dump_bad_arguments_fail_with_one_line(
    log_dir: Path, args: list[str], fragment: str
) -> None:
    assert_one_line_error(invoke("dump", str(log_dir), *args), fragment)


@pytest.mark.parametrize("command", ["dump", "check"])
def test_a_missing_directory_is_one_line_and_non_zero(tmp_path: Path, command: str) -> None:
    assert_one_line_error(invoke(command, str(tmp_path / "nope")), "no such directory")


def test_dump_works_while_a_live_log_holds_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "live"
    with Log(directory, SMALL) as log:
        fill(log, 50)
        result = invoke("dump", str(directory), "--format", "json")
        assert result.exit_code == 0, result.output
        assert [json.loads(line)["offset"] for line in result.stdout.splitlines()] == list(
            range(50)
        )
        checked = invoke("check", str(directory))
        assert checked.exit_code == 0, checked.output
        assert "not cleanly closed" in checked.stdout
        # The live log is undisturbed: it still appends, and the tools see the new record.
        assert log.append(b"after") == 50
        again = invoke("dump", str(directory), "--from", "50")
        assert again.stdout.splitlines() == [again.stdout.splitlines()[0]]
        assert again.stdout.rstrip().endswith('value: "after"')


# -- check ------------------------------------------------------------------------------------


def test_check_passes_a_healthy_log(log_dir: Path) -> None:
    result = invoke("check", str(log_dir))
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout
    report = check_log(str(log_dir))
    assert report.problems == [] and report.notes == []
    assert (report.records, report.first_offset, report.next_offset) == (RECORDS, 0, RECORDS)
    assert report.segments == len(stores(log_dir))


def test_check_finds_a_flipped_byte_and_reads_on_past_it(log_dir: Path) -> None:
    store = stores(log_dir)[1]
    data = bytearray(store.read_bytes())
    data[40] ^= 0x01  # inside the second frame's payload
    store.write_bytes(bytes(data))
    result = invoke("check", str(log_dir))
    assert result.exit_code == 2, result.output
    assert "CRC mismatch" in result.stdout
    assert "CORRUPT" in result.stdout
    report = check_log(str(log_dir))
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.segment == int(store.stem)
    assert problem.offset == int(store.stem) + 1
    # The index let the check resynchronise: every other record was verified.
    assert report.records == RECORDS - 1
    assert report.next_offset == RECORDS


def test_dump_stops_with_an_error_at_a_corrupt_frame(log_dir: Path) -> None:
    store = stores(log_dir)[1]
    data = bytearray(store.read_bytes())
    data[40] ^= 0x01
    store.write_bytes(bytes(data))
    result = invoke("dump", str(log_dir))
    assert result.exit_code == 2
    assert len(result.stdout.splitlines()) == int(store.stem) + 1
    assert "CRC mismatch" in result.stderr
    assert "Traceback" not in result.output


def test_check_finds_a_truncated_store(log_dir: Path) -> None:
    store = stores(log_dir)[-1]
    store.write_bytes(store.read_bytes()[:-10])
    result = invoke("check", str(log_dir))
    assert result.exit_code == 2, result.output
    whats = [p.what for p in check_log(str(log_dir)).problems]
    assert any("runs past the end of the store" in w for w in whats)
    assert any("index has" in w and "entries but the store has" in w for w in whats)


def test_check_finds_a_truncated_sealed_segment_as_a_gap(log_dir: Path) -> None:
    store = stores(log_dir)[0]
    size = store.stat().st_size
    os.truncate(store, size // 2)
    report = check_log(str(log_dir))
    whats = " | ".join(p.what for p in report.problems)
    assert "not contiguous" in whats
    assert "index has" in whats
    assert invoke("check", str(log_dir)).exit_code == 2


def test_check_finds_a_zeroed_index(log_dir: Path) -> None:
    index = sorted(log_dir.glob("*.index"))[1]
    index.write_bytes(bytes(index.stat().st_size))
    result = invoke("check", str(log_dir))
    assert result.exit_code == 2, result.output
    assert "disagree with the store" in result.stdout or "disagrees" in result.stdout
    (problem,) = check_log(str(log_dir)).problems
    assert problem.offset == int(index.stem) + 1


def test_a_crashed_log_is_reported_as_notes_and_left_unchanged(tmp_path: Path) -> None:
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    with Log(live, SMALL) as log:
        fill(log, 60)
        shutil.copytree(live, crashed)  # as a kill -9 leaves it: index pre-sized
    with open(stores(crashed)[-1], "ab") as file:
        file.write(b"\x00\x00\x00\x00\x00\x00\x00\x30\x12")  # a torn frame header
    before = digest(crashed)
    result = invoke("check", str(crashed))
    assert result.exit_code == 0, result.output
    assert "torn tail" in result.stdout
    assert "not cleanly closed" in result.stdout
    dumped = invoke("dump", str(crashed))
    assert dumped.exit_code == 0
    assert len(dumped.stdout.splitlines()) == 60
    assert digest(crashed) == before


def test_check_on_an_empty_directory_is_healthy(tmp_path: Path) -> None:
    result = invoke("check", str(tmp_path))
    assert result.exit_code == 0
    assert invoke("dump", str(tmp_path)).stdout == ""


def test_the_console_script_runs_the_log_group(log_dir: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("replog")
    ok = subprocess.run(
        [str(script), "log", "check", str(log_dir)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    missing = subprocess.run(
        [str(script), "log", "dump", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"replog: error: {tmp_path / 'nope'}: no such directory"


def test_dump_and_check_read_the_partitions_of_a_data_directory(tmp_path: Path) -> None:
    from replog.broker import Broker

    with Broker(tmp_path) as broker:
        broker.create_topic("orders", 2)
        broker.append("orders", b"eu", partition=1)
        broker.append("default", b"plain")
    out = invoke("dump", str(tmp_path), "--format", "json")
    assert out.exit_code == 0, out.output
    assert [json.loads(line)["value"] for line in out.output.splitlines()] == ["plain"]
    out = invoke("dump", str(tmp_path), "--topic", "orders", "--partition", "1")
    assert out.exit_code == 0 and "eu" in out.output
    out = invoke("dump", str(tmp_path), "--topic", "orders", "--partition", "2")
    assert out.exit_code == 1 and "no partition orders/2" in out.output
    out = invoke("check", str(tmp_path))
    assert out.exit_code == 0, out.output
    assert out.output.count("OK:") == 3
