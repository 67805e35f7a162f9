"""Real-process fault tests (issue #6): ``replog serve`` clusters on 127.0.0.1, node-to-node
traffic through tests/cluster/proxy.py, a concurrent workload with a history, and the checker
of tests/cluster/checker.py run on every node's log after the cluster stopped.

Each test: bootstrap, start the workload (batches of 1..50 records through the real client,
producers retrying failed and unknown attempts), inject one fault while it runs, require
progress (acknowledged batches) while a majority is up, heal, wait for every node to share
one commit index, stop every process, check. Timing: 50 ms ticks x 10 (election timeout 0.5-1 s).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from replog.storage.inspect import list_segments
from tests.cluster.checker import Summary, check, read_log
from tests.cluster.conftest import ELECTION_TIMEOUT_S, ProcCluster, wait_until
from tests.cluster.proxy import NetProxy
from tests.cluster.workload import Attempt, Workload

pytestmark = pytest.mark.timeout(60)


def start_workload(procs: ProcCluster, **options: object) -> Workload:
    def targets() -> list[tuple[str, str]]:
        return [(n.name, n.grpc_address) for n in procs.up()]

    return Workload(targets, **options).start()  # type: ignore[arg-type]


def finish(
    procs: ProcCluster,
    workload: Workload,
    net: NetProxy | None = None,
    *,
    exactly_once: bool = False,
) -> Summary:
    """Heal, let every node converge, stop them all (kill -9), check the history and logs."""
    workload.stop()
    if net is not None:
        net.heal()
    commit = procs.wait_converged()
    procs.kill_all()
    summary = check(workload, procs.log_dirs(), commit, exactly_once=exactly_once)
    print(f"\n{summary}")
    assert summary.acked > 0
    return summary


def test_leader_kill_9_fails_over_and_the_restarted_leader_rejoins(procs: ProcCluster) -> None:
    procs.bootstrap(3)
    workload = start_workload(procs)
    workload.wait_acked(30, 15, "before the kill")
    old = procs.leader()
    assert old is not None
    killed_at = time.monotonic()
    procs.nodes[old].kill()
    first_ack = workload.wait_acked(1, 15, "after the leader's kill -9")
    new = procs.leader([n for n in procs.names if n != old])
    print(f"\nfailover (kill -9 of {old} -> first acknowledged produce): "
          f"{first_ack - killed_at:.2f} s; new leader {new}")  # fmt: skip
    assert first_ack - killed_at < 10 * ELECTION_TIMEOUT_S
    workload.wait_acked(20, 15, "with two nodes")
    procs.nodes[old].start()  # same data dir, no --bootstrap/--join
    workload.wait_acked(20, 15, "after the restart")
    finish(procs, workload)


def test_follower_kill_9_and_restart_catches_up(procs: ProcCluster) -> None:
    procs.bootstrap(3)
    workload = start_workload(procs)
    workload.wait_acked(30, 15, "before the kill")
    leader = procs.leader()
    victim = next(n for n in procs.names if n != leader)
    procs.nodes[victim].kill()
    workload.wait_acked(30, 15, "with a follower dead")
    procs.nodes[victim].start()
    workload.wait_acked(20, 15, "after the restart")
    finish(procs, workload)


def test_sigstop_of_the_leader_past_the_election_timeout_then_sigcont(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3)
    workload = start_workload(procs)
    workload.wait_acked(30, 15, "before the pause")
    old = procs.leader()
    assert old is not None
    others = [n for n in procs.names if n != old]
    before = procs.nodes[others[0]].status().term
    procs.nodes[old].pause()
    paused_at = time.monotonic()
    new = procs.leader(others, timeout=15)
    assert new != old and procs.nodes[new].status().term > before
    workload.wait_acked(30, 15, "while the old leader is stopped")
    paused_for = time.monotonic() - paused_at
    assert paused_for > 2 * ELECTION_TIMEOUT_S
    procs.nodes[old].resume()
    # The old leader hears the higher term and steps down: one leader, and it is not old.
    wait_until(lambda: (s := procs.nodes[old].status()) and s.role != "leader", 10,
               f"{old} to step down")  # fmt: skip
    assert procs.leader() != old or procs.nodes[old].status().term > before
    workload.wait_acked(20, 15, f"after SIGCONT (paused >= {paused_for:.1f} s)")
    finish(procs, workload)


def test_isolating_the_leader_elects_a_new_one_and_healing_rejoins_it(
    procs: ProcCluster, net: NetProxy
) -> None:
    procs.bootstrap(3)
    workload = start_workload(procs)
    workload.wait_acked(30, 15, "before the partition")
    old = procs.leader()
    assert old is not None
    others = [n for n in procs.names if n != old]
    net.isolate(old, procs.names)
    cut_at = time.monotonic()
    new = procs.leader(others, timeout=15)
    assert new != old
    workload.wait_acked(30, 15, "on the majority side")
    healed_at = time.monotonic()
    net.heal()
    wait_until(lambda: procs.leader(timeout=0) not in (None, old) or
               procs.nodes[old].status().role != "leader", 10, f"{old} to step down")  # fmt: skip
    workload.wait_acked(20, 15, "after healing")
    summary = finish(procs, workload)
    # Nothing sent to the isolated leader during the partition was acknowledged.
    lost_side = [op for op in workload.ops if op.node == old and op.kind == "ok"
                 and cut_at + 0.5 < op.started and op.finished < healed_at]  # fmt: skip
    assert not lost_side, lost_side
    assert summary.acked


def test_split_two_three_with_the_leader_in_the_minority_acks_only_on_the_majority(
    procs: ProcCluster, net: NetProxy
) -> None:
    procs.bootstrap(5)
    workload = start_workload(procs, producers=4)
    workload.wait_acked(30, 20, "before the split")
    old = procs.leader()
    assert old is not None
    minority = [old, next(n for n in procs.names if n != old)]
    majority = [n for n in procs.names if n not in minority]
    net.partition(minority, majority)
    cut_at = time.monotonic()
    new = procs.leader(majority, timeout=15)
    assert new in majority
    workload.wait_acked(30, 15, "on the majority side")
    healed_at = time.monotonic()
    net.heal()
    workload.wait_acked(20, 15, "after healing")
    finish(procs, workload)
    # The minority (the old leader among it) committed nothing during the split.
    minority_acks = [op for op in workload.ops if op.node in minority and op.kind == "ok"
                     and cut_at + 0.5 < op.started and op.finished < healed_at]  # fmt: skip
    assert not minority_acks, minority_acks


def test_a_follower_with_a_wiped_data_dir_rejoins_and_catches_up(procs: ProcCluster) -> None:
    procs.bootstrap(3)
    workload = start_workload(procs)
    workload.wait_acked(40, 15, "before the wipe")
    leader = procs.leader()
    assert leader is not None
    victim = procs.nodes[next(n for n in procs.names if n != leader)]
    victim.kill()
    shutil.rmtree(victim.data_dir)
    workload.wait_acked(20, 10, "with the follower gone")
    victim.start("--join", procs.nodes[leader].grpc_address)
    # The leader removes the old incarnation, adds the wiped node back as a learner, which
    # catches up and is promoted: three voters again, and every node converges (finish).
    wait_until(lambda: not (victim.data_dir / "join-pending").exists(), 10, "join confirmed")
    procs.wait_voters(3, timeout=15)
    logs = "".join(n.log_path.read_text(errors="replace") for n in procs.nodes.values())
    assert "re-joins with an empty data dir" in logs  # removed first, not trusted as a voter
    workload.wait_acked(20, 10, "after the re-join")
    finish(procs, workload)


def _flip_byte(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x5A]))


def test_a_follower_with_a_damaged_segment_never_serves_or_replicates_a_bad_record(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(3, "--segment-bytes", "4096", "--max-record-bytes", "1024")
    workload = start_workload(procs)
    leader = procs.leader()
    assert leader is not None
    victim = procs.nodes[next(n for n in procs.names if n != leader)]
    log_dir = victim.data_dir / "log"
    wait_until(lambda: len(list_segments(str(log_dir))) >= 3, 20, "three segments")
    workload.wait_acked(10, 10, "before the damage")
    victim.kill()
    segments = list_segments(str(log_dir))
    sealed, active = segments[-2], segments[-1]
    assert sealed.store_path is not None and active.store_path is not None
    _flip_byte(Path(sealed.store_path), os.path.getsize(sealed.store_path) // 2)
    size = os.path.getsize(active.store_path)
    os.truncate(active.store_path, max(0, size - 7))  # a torn last frame
    victim.spawn()
    started = wait_until(lambda: victim.ready_file.exists() or not victim.running, 20, "start")
    assert started
    if not victim.running:  # it refused to start on a damaged log: acceptable, say why
        outcome = f"refused to start (exit {victim.proc.returncode if victim.proc else '?'})"
        assert "corrupt" in victim.tail(40).lower() or "crc" in victim.tail(40).lower(), (
            victim.tail(40)
        )
        workload.wait_acked(20, 15, "without the damaged node")
        workload.stop()
        healthy = [n for n in procs.names if n != victim.name]
        commit = procs.wait_converged(healthy)
        procs.kill_all()
        dirs = {n: p for n, p in procs.log_dirs().items() if n != victim.name}
        print(f"\n{victim.name}: {outcome}; {check(workload, dirs, commit)}")
        return
    victim.wait_ready()
    workload.wait_acked(20, 15, "after the damaged node restarted")
    try:
        procs.transfer_leader(victim.name)
        outcome = "led after transfer-leader"
    except grpc.RpcError as exc:
        outcome = f"transfer refused: {exc.code()}"
    workload.wait_acked(20, 15, "after the transfer")
    print(f"\n{victim.name}: {outcome}")
    finish(procs, workload)  # reads every frame with its CRC: a bad record fails the check


# -- scenario 8: a node whose disk fails (fills up) -------------------------------------------

Mount = Callable[[Path, str], Path]


@pytest.fixture
def tmpfs(procs: ProcCluster) -> Iterator[Mount]:
    """``mount(path, size)``: a tmpfs of ``size`` at ``path`` (root only, else skip). The
    finalizer kills every process first (a process holding files there keeps the memory),
    then unmounts lazily, always."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root: there it must run)")
        path.mkdir(parents=True, exist_ok=True)
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)]
        done = subprocess.run(cmd, capture_output=True, check=False)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        try:
            procs.kill_all()
        finally:
            for path in reversed(mounted):
                subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(mount: Path) -> int:
    """Write a filler file until the file system is full (ENOSPC); return its size."""
    written = 0
    with open(mount / "filler", "wb", buffering=0) as f:
        for block in (b"\xff" * (1 << 20), b"\xff" * 4096, b"\xff"):
            while True:
                try:
                    written += f.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def _check_failed_log(name: str, log_dir: Path, ops: list[Attempt]) -> int:
    """The failed node's log as it left it: every frame whole (a torn tail ends the read),
    dense, and no acknowledged value anywhere but at its acknowledged offset, unless another
    attempt of its batch (failed or unknown) may have left a copy in this node's log."""
    records = read_log(log_dir)
    acked: dict[bytes, int] = {}
    retried: set[tuple[int, int]] = set()
    batch_of: dict[bytes, tuple[int, int]] = {}
    for op in ops:
        if op.kind == "ok" and op.offset is not None:
            acked.update((value, op.offset + i) for i, value in enumerate(op.values))
            batch_of.update((value, (op.worker, op.batch)) for value in op.values)
        else:
            retried.add((op.worker, op.batch))
    for position, record in enumerate(records, 1):
        assert record.offset == position, f"{name}: offset {record.offset} at {position}"
        if record.type == 0 and record.value in acked:
            assert acked[record.value] == record.offset or batch_of[record.value] in retried, (
                f"{name} holds acknowledged {record.value!r} at {record.offset}, "
                f"acknowledged at {acked[record.value]} (its only attempt)"
            )
    return len(records)


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_a_node_whose_disk_fills_up_fail_stops_and_the_others_carry_on(
    procs: ProcCluster, tmpfs: Mount, role: str
) -> None:
    victim_name = "n1" if role == "leader" else "n3"
    # Room for the active segment's preallocated index (12 MiB) and a little more.
    mount = tmpfs(procs.root / victim_name, "16m")
    procs.bootstrap(3)
    if (procs.leader() == victim_name) != (role == "leader"):
        procs.transfer_leader("n1" if role == "leader" else "n2")
        wait_until(lambda: (procs.leader() == victim_name) == (role == "leader"), 10, role)
    victim = procs.nodes[victim_name]
    workload = start_workload(procs)
    workload.wait_acked(30, 15, "before the disk fills")
    filled_at = time.monotonic()
    _fill(mount)
    wait_until(lambda: not victim.running, 15, f"{victim_name} ({role}) to exit")
    exited_after = time.monotonic() - filled_at
    code = victim.proc.returncode if victim.proc else None
    assert code is not None and code > 0, f"exit status {code}: {victim.tail()}"  # not a signal
    assert '"level": "critical"' in victim.tail(60), victim.tail(60)
    first_ack = workload.wait_acked(20, 15, f"after the {role}'s disk failed")
    print(f"\n{role} {victim_name}: exit {code} {exited_after:.2f} s after the disk filled; "
          f"first acknowledged produce after that: {first_ack - filled_at:.2f} s")  # fmt: skip
    records = _check_failed_log(victim_name, victim.data_dir / "log", workload.ops)
    # The supervisor restarts it once there is room again: it recovers (a torn tail is cut),
    # drops any suffix the others replaced, catches up, and every log passes the checker.
    (mount / "filler").unlink()
    victim.start()
    workload.wait_acked(20, 15, "after the restart")
    summary = finish(procs, workload)
    print(f"{victim_name} held {records} records when it failed; final commit {summary.commit}")
