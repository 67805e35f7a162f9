"""The fault-injecting file system itself: durability rules, torn writes, injected errors."""

from __future__ import annotations

import errno
import random

import pytest

from replog.storage.faultfs import FaultyFileSystem

D = "/data"


@pytest.fixture
def fs() -> FaultyFileSystem:
    fs = FaultyFileSystem()
    fs.makedirs(D)
    return fs


def test_synced_bytes_survive_a_power_cut_and_unsynced_ones_do_not(fs: FaultyFileSystem) -> None:
    handle = fs.open(f"{D}/a")
    fs.sync_dir(D)
    handle.append(b"durable")
    handle.sync()
    handle.append(b"-lost")
    assert handle.pread(100, 0) == b"durable-lost"
    fs.power_cut()
    assert fs.read_bytes(f"{D}/a") == b"durable"


def test_a_file_created_after_the_last_sync_dir_vanishes_at_a_power_cut(
    fs: FaultyFileSystem,
) -> None:
    handle = fs.open(f"{D}/new")
    handle.append(b"x")
    handle.sync()
    fs.power_cut()
    assert not fs.exists(f"{D}/new")
    assert fs.listdir(D) == []


def test_a_removed_file_comes_back_with_its_durable_bytes_unless_the_dir_was_synced(
    fs: FaultyFileSystem,
) -> None:
    handle = fs.open(f"{D}/a")
    handle.append(b"abc")
    handle.sync()
    fs.sync_dir(D)
    fs.remove(f"{D}/a")
    assert not fs.exists(f"{D}/a")
    fs.power_cut()
    assert fs.read_bytes(f"{D}/a") == b"abc"
    fs.remove(f"{D}/a")
    fs.sync_dir(D)
    fs.power_cut()
    assert not fs.exists(f"{D}/a")


def test_a_rename_is_durable_only_after_sync_dir_and_keeps_the_old_file_until_then(
    fs: FaultyFileSystem,
) -> None:
    for name, data in (("state", b"old"), ("state.tmp", b"new")):
        handle = fs.open(f"{D}/{name}")
        handle.append(data)
        handle.sync()
        handle.close()
        if name == "state":
            fs.sync_dir(D)
    fs.replace(f"{D}/state.tmp", f"{D}/state")
    assert fs.read_bytes(f"{D}/state") == b"new" and fs.listdir(D) == ["state"]
    fs.power_cut()
    assert fs.read_bytes(f"{D}/state") == b"old" and fs.listdir(D) == ["state"]
    handle = fs.open(f"{D}/state.tmp")
    handle.append(b"new")
    handle.sync()
    fs.replace(f"{D}/state.tmp", f"{D}/state")
    fs.sync_dir(D)
    fs.power_cut()
    assert fs.read_bytes(f"{D}/state") == b"new" and fs.listdir(D) == ["state"]


def test_renaming_a_missing_file_fails_and_an_injected_error_changes_nothing(
    fs: FaultyFileSystem,
) -> None:
    with pytest.raises(FileNotFoundError):
        fs.replace(f"{D}/missing", f"{D}/b")
    fs.open(f"{D}/a").close()
    fs.fail("replace", errno.EIO, times=1)
    with pytest.raises(OSError):
        fs.replace(f"{D}/a", f"{D}/b")
    assert fs.listdir(D) == ["a"]
    fs.replace(f"{D}/a", f"{D}/b")
    assert fs.listdir(D) == ["b"]


def test_sync_dir_of_one_directory_leaves_names_in_another_undurable(
    fs: FaultyFileSystem,
) -> None:
    fs.makedirs("/other")
    fs.open(f"{D}/a").sync()
    fs.open("/other/b").sync()
    fs.sync_dir(D)
    fs.power_cut()
    assert fs.exists(f"{D}/a")
    assert not fs.exists("/other/b")


def test_a_mapped_file_is_durable_after_flush_only(fs: FaultyFileSystem) -> None:
    mapped = fs.map(f"{D}/idx", 8)
    fs.sync_dir(D)
    mapped.buffer[0:4] = b"abcd"
    mapped.flush()
    mapped.buffer[4:8] = b"efgh"
    assert fs.read_bytes(f"{D}/idx") == b"abcdefgh"
    fs.power_cut()
    assert fs.read_bytes(f"{D}/idx") == b"abcd" + bytes(4)


def test_a_power_cut_with_an_rng_keeps_a_prefix_of_the_unsynced_tail() -> None:
    kept: set[int] = set()
    for seed in range(40):
        fs = FaultyFileSystem()
        fs.makedirs(D)
        handle = fs.open(f"{D}/a")
        fs.sync_dir(D)
        handle.append(b"0123")
        handle.sync()
        handle.append(b"456789")
        fs.power_cut(random.Random(seed))
        data = fs.read_bytes(f"{D}/a")
        assert b"0123456789".startswith(data)
        assert len(data) >= 4
        kept.add(len(data))
    assert len(kept) > 3  # torn at different places, including not at all and fully


def test_a_power_cut_with_an_rng_mixes_pages_of_a_mapped_file() -> None:
    outcomes: set[tuple[bool, bool]] = set()
    for seed in range(40):
        fs = FaultyFileSystem()
        fs.makedirs(D)
        mapped = fs.map(f"{D}/idx", 8192)
        mapped.flush()
        fs.sync_dir(D)
        mapped.buffer[0:1] = b"A"
        mapped.buffer[4096:4097] = b"B"
        fs.power_cut(random.Random(seed))
        data = fs.read_bytes(f"{D}/idx")
        assert len(data) == 8192
        outcomes.add((data[0:1] == b"A", data[4096:4097] == b"B"))
    assert outcomes == {(True, True), (True, False), (False, True), (False, False)}


def test_handles_from_before_a_power_cut_are_dead(fs: FaultyFileSystem) -> None:
    handle = fs.open(f"{D}/a")
    mapped = fs.map(f"{D}/m", 4)
    fs.sync_dir(D)
    fs.power_cut()
    with pytest.raises(OSError) as info:
        handle.append(b"zombie")
    assert info.value.errno == errno.EIO
    with pytest.raises(OSError):
        mapped.flush()
    mapped.buffer[0:4] = b"gone"
    assert fs.read_bytes(f"{D}/m") == b""  # never flushed, so the resize was lost too
    handle.close()
    mapped.close()


def test_a_second_lock_on_the_same_path_is_refused_until_released_or_power_cut(
    fs: FaultyFileSystem,
) -> None:
    first = fs.lock(f"{D}/.lock")
    with pytest.raises(BlockingIOError):
        fs.lock(f"{D}/.lock")
    first.release()
    second = fs.lock(f"{D}/.lock")
    fs.power_cut()
    third = fs.lock(f"{D}/.lock")
    second.release()  # a lock released by the power cut: must not free the new holder
    with pytest.raises(BlockingIOError):
        fs.lock(f"{D}/.lock")
    third.release()


def test_an_injected_write_error_fires_after_the_given_calls_for_the_given_times(
    fs: FaultyFileSystem,
) -> None:
    handle = fs.open(f"{D}/a")
    fault = fs.fail("write", errno.ENOSPC, after=1, times=1)
    handle.append(b"ok")
    with pytest.raises(OSError) as info:
        handle.append(b"no")
    assert info.value.errno == errno.ENOSPC
    handle.append(b"!")
    assert fs.read_bytes(f"{D}/a") == b"ok!"
    assert fault.hits == 1


def test_a_partial_write_error_leaves_half_the_data_in_the_file(fs: FaultyFileSystem) -> None:
    handle = fs.open(f"{D}/a")
    fs.fail("write", errno.EIO, partial=True)
    with pytest.raises(OSError):
        handle.append(b"abcdef")
    assert fs.read_bytes(f"{D}/a") == b"abc"


def test_a_failed_sync_makes_nothing_durable(fs: FaultyFileSystem) -> None:
    handle = fs.open(f"{D}/a")
    fs.sync_dir(D)
    handle.append(b"abc")
    fs.fail("sync", errno.EIO, times=1)
    with pytest.raises(OSError):
        handle.sync()
    fs.power_cut()
    assert fs.read_bytes(f"{D}/a") == b""


def test_faults_can_be_limited_to_a_path_and_healed(fs: FaultyFileSystem) -> None:
    fs.fail("open", errno.EACCES, path_contains="secret")
    fs.open(f"{D}/public")
    with pytest.raises(PermissionError):
        fs.open(f"{D}/secret")
    fs.heal()
    fs.open(f"{D}/secret")


def test_crash_after_freezes_the_disk_until_a_power_cut(fs: FaultyFileSystem) -> None:
    handle = fs.open(f"{D}/a")
    fs.sync_dir(D)
    fs.crash_after(2)
    handle.append(b"1")
    handle.sync()
    with pytest.raises(OSError):
        handle.append(b"2")
    with pytest.raises(OSError):
        fs.open(f"{D}/b")
    assert fs.crashed
    fs.power_cut()
    assert fs.read_bytes(f"{D}/a") == b"1"
    fs.open(f"{D}/a").append(b"2")


def test_directory_queries_and_errors_match_a_real_file_system(fs: FaultyFileSystem) -> None:
    fs.open(f"{D}/f")
    assert fs.is_dir(D)
    assert not fs.is_dir(f"{D}/f")
    assert fs.exists(f"{D}/f")
    assert fs.listdir(D) == ["f"]
    with pytest.raises(FileNotFoundError):
        fs.open("/missing/f")
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{D}/f")
    with pytest.raises(NotADirectoryError):
        fs.listdir(f"{D}/f")
    with pytest.raises(FileNotFoundError):
        fs.file_size(f"{D}/nope")


def test_resize_grows_with_zeros_and_cuts(fs: FaultyFileSystem) -> None:
    fs.resize(f"{D}/r", 4)
    assert fs.read_bytes(f"{D}/r") == bytes(4)
    fs.open(f"{D}/r").append(b"xy")
    fs.resize(f"{D}/r", 5)
    assert fs.read_bytes(f"{D}/r") == bytes(4) + b"x"
    assert fs.file_size(f"{D}/r") == 5
