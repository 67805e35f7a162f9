"""Data-driven interaction tests (etcd's ``testdata/*.txt``): commands with inline output.

File format: comment lines start with ``#``; a test is a command line, a ``----`` line, the
expected output lines, and a blank line. Set ``REPLOG_REWRITE=1`` to regenerate the outputs.

Commands (ids are node ids; ``key=value`` options are optional):

- ``add-nodes N [first=1] [voters=1,2,3] [learners=] [election=10] [heartbeat=1]
  [prevote=true] [checkquorum=true] [max-msg-bytes=N] [inflight=N]``
- ``set-log ID TERM... [term=T]``: give a node a persisted log with entries of those terms
- ``campaign ID``, ``tick ID [N]``, ``tick-election ID``, ``tick-heartbeat ID``
- ``propose ID DATA...``, ``propose-conf-change ID add-learner|promote|remove NODE``
- ``transfer-leader FROM TO``, ``compact ID INDEX``, ``crash-restart ID``
- ``process-ready ID...``, ``deliver-msgs ID... [drop=true]``, ``stabilize [ID...]``
- ``partition 1 2 / 3``, ``isolate ID``, ``heal``, ``drop-type TYPE...``
- ``status``, ``raft-log ID``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from replog.raft import ConfChange, ConfChangeOp, RaftError
from replog.raft.describe import describe_entry, describe_membership
from tests.raft.env import Env


@dataclass
class Block:
    """One command with its expected output, and the comment lines before it."""

    preamble: list[str]
    command: str
    expected: list[str]


def parse(text: str) -> tuple[list[Block], list[str]]:
    """Split a testdata file into blocks and trailing comment lines."""
    blocks: list[Block] = []
    preamble: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            preamble.append(line)
            i += 1
            continue
        assert lines[i + 1] == "----", f"line {i + 2}: expected ---- after {line!r}"
        j = i + 2
        while j < len(lines) and lines[j].strip():
            j += 1
        blocks.append(Block(preamble, line, lines[i + 2 : j]))
        preamble = []
        i = j
    return blocks, preamble


def render(blocks: list[Block], trailer: list[str], outputs: list[list[str]]) -> str:
    """Rebuild a testdata file with new outputs."""
    lines: list[str] = []
    for block, output in zip(blocks, outputs, strict=True):
        lines.extend(block.preamble)
        lines.extend([block.command, "----", *output])
    lines.extend(trailer)
    return "\n".join(lines).rstrip("\n") + "\n"


def _ids(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    plain = [a for a in args if "=" not in a]
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    return plain, opts


class Runner:
    """Executes commands against an :class:`Env` and returns their output lines."""

    def __init__(self) -> None:
        self.env = Env()
        self.handlers: dict[str, Callable[[list[str], dict[str, str]], None]] = {
            name.removeprefix("cmd_").replace("_", "-"): getattr(self, name)
            for name in dir(self)
            if name.startswith("cmd_")
        }

    def run(self, command: str) -> list[str]:
        """Run one command line; return its output (``ok`` if it printed nothing)."""
        name, *rest = command.split()
        args, opts = _options(rest)
        try:
            self.handlers[name](args, opts)
        except (RaftError, ValueError) as exc:
            self.env.out.append(f"error: {type(exc).__name__}: {exc}")
        return self.env.take_output() or ["ok"]

    def cmd_add_nodes(self, args: list[str], opts: dict[str, str]) -> None:
        first = int(opts.get("first", "1"))
        ids = list(range(first, first + int(args[0])))
        voters = _ids(opts["voters"]) if "voters" in opts else None
        options: dict[str, int | bool] = {}
        for key, field in [
            ("election", "election_ticks"),
            ("heartbeat", "heartbeat_ticks"),
            ("max-msg-bytes", "max_msg_bytes"),
            ("inflight", "max_inflight_msgs"),
        ]:
            if key in opts:
                options[field] = int(opts[key])
        for key, field in [("prevote", "pre_vote"), ("checkquorum", "check_quorum")]:
            if key in opts:
                options[field] = opts[key] == "true"
        self.env.add_nodes(ids, voters, _ids(opts.get("learners", "")), **options)

    def cmd_set_log(self, args: list[str], opts: dict[str, str]) -> None:
        term = int(opts["term"]) if "term" in opts else None
        self.env.set_log(int(args[0]), [int(t) for t in args[1:]], term)

    def cmd_campaign(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.nodes[int(args[0])].campaign()

    def cmd_tick(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)

    def cmd_tick_election(self, args: list[str], opts: dict[str, str]) -> None:
        node = self.env.nodes[int(args[0])]
        self.env.tick(node.id, 2 * node.cfg.election_ticks)

    def cmd_tick_heartbeat(self, args: list[str], opts: dict[str, str]) -> None:
        node = self.env.nodes[int(args[0])]
        self.env.tick(node.id, node.cfg.heartbeat_ticks)

    def cmd_propose(self, args: list[str], opts: dict[str, str]) -> None:
        first, last = self.env.nodes[int(args[0])].propose([a.encode() for a in args[1:]])
        self.env.out.append(f"ok: indexes {first}..{last}")

    def cmd_propose_conf_change(self, args: list[str], opts: dict[str, str]) -> None:
        change = ConfChange(ConfChangeOp(args[1]), int(args[2]))
        index = self.env.nodes[int(args[0])].propose_conf_change(change)
        self.env.out.append(f"ok: index {index}")

    def cmd_transfer_leader(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.nodes[int(args[0])].transfer_leadership(int(args[1]))

    def cmd_compact(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.stores[int(args[0])].compact(int(args[1]))

    def cmd_crash_restart(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.restart(int(args[0]))

    def cmd_process_ready(self, args: list[str], opts: dict[str, str]) -> None:
        for node_id in map(int, args):
            self.env.process_ready(node_id)

    def cmd_deliver_msgs(self, args: list[str], opts: dict[str, str]) -> None:
        for node_id in map(int, args):
            self.env.deliver(node_id, drop=opts.get("drop") == "true")

    def cmd_stabilize(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.stabilize([int(a) for a in args] if args else None)

    def cmd_partition(self, args: list[str], opts: dict[str, str]) -> None:
        groups: list[list[int]] = [[]]
        for arg in args:
            if arg == "/":
                groups.append([])
            else:
                groups[-1].append(int(arg))
        self.env.partition(*groups)

    def cmd_isolate(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.isolate(int(args[0]))

    def cmd_heal(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.heal()
        self.env.dropped_types = set()

    def cmd_drop_type(self, args: list[str], opts: dict[str, str]) -> None:
        self.env.dropped_types |= set(args)

    def cmd_status(self, args: list[str], opts: dict[str, str]) -> None:
        for node_id in sorted(self.env.nodes):
            r = self.env.nodes[node_id]
            self.env.out.append(
                f"{node_id}: {r.role.value} term={r.term} lead={r.lead} "
                f"commit={r.log.committed} last={r.log.last_index()} "
                f"{describe_membership(r.config)}"
            )

    def cmd_raft_log(self, args: list[str], opts: dict[str, str]) -> None:
        r = self.env.nodes[int(args[0])]
        log = r.log
        entries = log.entries(log.first_index(), log.last_index() + 1)
        self.env.out.append(f"first={log.first_index()} last={log.last_index()}")
        self.env.out.extend(describe_entry(e) for e in entries)


def run_file(path: Path, rewrite: bool) -> tuple[list[tuple[Block, list[str]]], str]:
    """Run a testdata file; return mismatches and the rewritten text."""
    blocks, trailer = parse(path.read_text())
    runner = Runner()
    outputs = [runner.run(block.command) for block in blocks]
    mismatches = [(b, o) for b, o in zip(blocks, outputs, strict=True) if b.expected != o]
    return mismatches, render(blocks, trailer, outputs)
