"""The replog ``Log`` as Raft's log (a :class:`RaftLogStore`), plus a small hard-state file.

Theory of operation: Raft index == record offset (the Log opens with ``initial_offset=1``).
A user-data entry's ``data`` *is* the serialized Record the leader built (offset = index,
term, type 0, timestamp), so followers store byte-identical logs and consumers read entries
as records. Every other entry (no-op 1, configuration 2, address-book member 3) is stored as
a Record with ``type`` = its kind and the entry's data as ``value``: a "control" record that
consumers skip. The kind alone tells control entries apart, so no payload is ever inspected.

The term of every retained entry and the kinds of the (rare) non-data entries are kept in
memory, rebuilt by one scan on open, so ``term()`` never touches the disk. A bounded cache of
the newest entries (at most 32 MiB, counting 120 bytes per entry besides its data) serves the
leader's replication reads.

The state file (``raft-state.json``, replaced atomically: write temp, fsync, rename, fsync
dir) holds the hard state and the snapshot point (the index before the first retained entry
and its term). Commit-only changes of the hard state are written at most every
``commit_flush_s`` (the commit index is volatile in Raft; a restart with an older one is
safe), term / vote / configuration changes at once.

Not thread-safe: one driver owns it (its blocking calls run in one worker thread).
"""

from __future__ import annotations

import bisect
import json
import os
import secrets
import shutil
import time
from array import array
from collections.abc import Sequence
from dataclasses import replace
from operator import itemgetter
from pathlib import Path

from replog.cluster.controller_commands import METADATA_RECORD_TYPE
from replog.raft.errors import CompactedError
from replog.raft.messages import (
    CONTINUES,
    Entry,
    EntryKind,
    HardState,
    Membership,
    SnapshotMeta,
    base_kind,
)
from replog.raft.storage import data_bytes, limit_by_bytes
from replog.storage import Log, LogConfig
from replog.storage.atomic import write_atomically
from replog.storage.codec import decode_records
from replog.storage.files import FileSystem, OsFileSystem
from replog.tlog.log_tree import TLOG_DIR, attach_tree
from replog.v1.record_pb2 import Record

__all__ = [
    "MEMBER_RECORD_TYPE",
    "METADATA_RECORD_TYPE",
    "STATE_FILE",
    "ReplogLogStore",
    "entry_payload",
]

STATE_FILE = "raft-state.json"
MEMBER_RECORD_TYPE = 3
"""Entry kind and record type of an address-book update, JSON ``{"id": name, "addr": address}``
(consumers skip every type but 0)."""

_kind_of = itemgetter(2)
_new_tuple = tuple.__new__
_STAGING = "snapshot"
_STAGING_DONE = "COMPLETE"
_CACHE_ENTRY_COST = 120  # an Entry tuple and its bytes object, besides the data
_CACHE_MAX_BYTES = 32 << 20
_CACHE_KEEP_BYTES = _CACHE_MAX_BYTES * 3 // 4
_SCAN_CHUNK = 4096


def is_control(entry: Entry) -> bool:
    """Whether ``entry`` is stored as a Record consumers skip (no-op, config, member)."""
    return base_kind(entry.kind) != EntryKind.DATA


def entry_payload(entry: Entry) -> bytes:
    """The Record bytes stored for ``entry`` (user data is already a serialized Record, with
    ``batch_continues`` set by the leader where the entry's kind has CONTINUES)."""
    if base_kind(entry.kind) == EntryKind.DATA:
        return entry.data
    record = Record(value=entry.data, offset=entry.index, term=entry.term, type=entry.kind)
    return record.SerializeToString()


class ReplogLogStore:
    """A :class:`replog.raft.RaftLogStore` over a replog ``Log`` in ``directory/log``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        bootstrap: Membership | None = None,
        commit_flush_s: float = 1.0,
        fs: FileSystem | None = None,
        verifiable: bool = False,
    ) -> None:
        """Open (or create) the log and state file; ``bootstrap`` seeds a brand-new node's
        membership (ignored when a state file exists). ``fs`` holds the log and the state
        file (tests pass a FaultyFileSystem to cut the power); snapshot staging uses the OS."""
        self.directory = Path(directory)
        self._fs: FileSystem = fs or OsFileSystem()
        self._fs.makedirs(str(self.directory))
        self._log_config = replace(config or LogConfig(), initial_offset=1)
        self.log = Log(self.directory / "log", self._log_config, fs=self._fs)
        self._commit_flush_s = commit_flush_s
        state, snap_index, snap_term = self._load_state(bootstrap)
        self._state = state
        self._written = state
        self._written_at = time.monotonic()
        lowest = self.log.lowest_offset
        if lowest == 1 or snap_index == lowest - 1:
            self._snap_index, self._snap_term = lowest - 1, (snap_term if lowest > 1 else 0)
        else:  # Crashed between a front truncation and the state write: the first record
            # still readable becomes the snapshot point (its term is in the record).
            self._snap_index, self._snap_term = lowest, self.log.read(lowest).term
        self._terms = array("Q")
        self._kinds: dict[int, int] = {}
        # Runs [start, end] of entries flagged CONTINUES (one per multi-entry proposal),
        # sorted and disjoint: a new leader drops an incomplete proposal at its log's end.
        self._run_starts = array("Q")
        self._run_ends = array("Q")
        self.control: list[int] = []
        """Sorted offsets of retained records with ``type != 0`` (skipped by consumers)."""
        self._cache: list[Entry] = []
        self._cache_first = 0
        self._cache_bytes = 0
        self._scan()
        self.recovery_cut = self.log.recovery_bytes_truncated > 0
        """This opening cut a torn or damaged tail: entries this node acknowledged may be gone."""
        saved_lost_commit, saved_log_lost = self._saved_loss
        self.log_lost = saved_log_lost or self.recovery_cut
        """Entries this node acknowledged may be gone (some recovery cut a tail) and no append
        was accepted since: kept in the state file until ``clear_log_lost``."""
        self.lost_commit = saved_lost_commit
        """The commit index saved before a restart whose recovery cut committed entries
        (0 if none): until this node holds that index again it must not vote. Kept in the
        state file until ``clear_lost_commit``, however often the node restarts meanwhile."""
        if self._state.commit > self.last_index():
            self.lost_commit = max(self.lost_commit, self._state.commit)
            self._state = replace(self._state, commit=max(self.last_index(), self._snap_index))
        if (self.lost_commit, self.log_lost) != self._saved_loss:
            self._write_state()  # durable before this node answers anyone
        self._remove_staging()  # streams being received when the node stopped are void
        self._verifiable = verifiable
        self.tree = attach_tree(self.log, self.directory / TLOG_DIR) if verifiable else None
        """The partition's verifiable-log tree: leaf i is the payload stored at offset i
        (None unless ``verifiable``: hashing costs about as much as appending, see
        docs/benchmarks.md)."""

    # -- state file -----------------------------------------------------------------------

    def _load_state(self, bootstrap: Membership | None) -> tuple[HardState, int, int]:
        path = str(self.directory / STATE_FILE)
        self._saved_loss = (0, False)
        if not self._fs.exists(path):
            return HardState(config=bootstrap or Membership()), 0, 0
        handle = self._fs.open(path)
        try:
            doc = json.loads(handle.pread(handle.size(), 0))
        finally:
            handle.close()
        config = Membership(frozenset(doc["voters"]), frozenset(doc["learners"]))
        state = HardState(doc["term"], doc["vote"], doc["commit"], config)
        self._saved_loss = (int(doc.get("lost_commit", 0)), bool(doc.get("log_lost", False)))
        return state, int(doc["snap_index"]), int(doc["snap_term"])

    def _write_state(self) -> None:
        s = self._state
        doc = {
            "term": s.term,
            "vote": s.vote,
            "commit": s.commit,
            "voters": sorted(s.config.voters),
            "learners": sorted(s.config.learners),
            "snap_index": self._snap_index,
            "snap_term": self._snap_term,
            "lost_commit": self.lost_commit,
            "log_lost": self.log_lost,
        }
        write_atomically(self.directory / STATE_FILE, json.dumps(doc).encode(), self._fs)
        self._written = s
        self._written_at = time.monotonic()

    def _scan(self) -> None:
        """Rebuild the in-memory terms and kinds from the retained records."""
        first = self._snap_index + 1
        offset = self.log.lowest_offset
        while offset < self.log.next_offset:
            payloads = self.log.read_payloads(offset, max_records=_SCAN_CHUNK, max_bytes=1 << 24)
            for record in decode_records(payloads):
                if record.type:
                    self.control.append(record.offset)
                if record.offset >= first:
                    self._terms.append(record.term)
                    if record.type:
                        self._kinds[record.offset] = record.type
                    if record.batch_continues or record.type & CONTINUES:
                        self._mark_continued(record.offset)
            offset += len(payloads)

    def _mark_continued(self, index: int) -> None:
        ends = self._run_ends
        if ends and ends[-1] == index - 1:
            ends[-1] = index
        else:
            self._run_starts.append(index)
            ends.append(index)

    def control_entries(self, kind: int, after: int, up_to: int) -> list[tuple[int, bytes]]:
        """(index, data) of the readable records of entry ``kind`` at indexes in ``(after,
        up_to]``, in order, also those below the first index (a snapshot's records): the
        metadata entries to fold again after a restart or a snapshot install."""
        lo, hi = bisect.bisect_right(self.control, after), bisect.bisect_right(self.control, up_to)
        records = (self.log.read(i) for i in self.control[lo:hi])
        return [(r.offset, r.value) for r in records if base_kind(r.type) == kind]

    # -- RaftStorage ----------------------------------------------------------------------

    def initial_state(self) -> HardState:
        """Return the last saved hard state."""
        return self._state

    def first_index(self) -> int:
        """Return the first retained index."""
        return self._snap_index + 1

    def last_index(self) -> int:
        """Return the last stored index."""
        return self._snap_index + len(self._terms)

    @property
    def snapshot_point(self) -> tuple[int, int]:
        """The (index, term) before the first retained entry."""
        return self._snap_index, self._snap_term

    def term(self, index: int) -> int | None:
        """Return the term at ``index`` (None outside ``[first_index - 1, last_index]``)."""
        pos = index - self._snap_index
        if pos == 0:
            return self._snap_term
        if 0 < pos <= len(self._terms):
            return self._terms[pos - 1]
        return None

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Return entries ``[lo, hi)`` within ``max_bytes`` (at least one)."""
        if lo <= self._snap_index:
            raise CompactedError(f"index {lo} is compacted (first is {self._snap_index + 1})")
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return []
        if self._cache and lo >= self._cache_first:
            base = self._cache_first
            return limit_by_bytes(self._cache[lo - base : hi - base], max_bytes)
        payloads = self._read(lo, hi, max_bytes)
        out: list[Entry] = []
        kinds, terms, snap = self._kinds, self._terms, self._snap_index
        for index, payload in enumerate(payloads, lo):
            kind = kinds.get(index, 0)
            data = payload if base_kind(kind) == 0 else Record.FromString(payload).value
            out.append(Entry(terms[index - snap - 1], index, kind, data))
        self._flag_continued(out, lo)
        return out

    def _flag_continued(self, out: list[Entry], lo: int) -> None:
        """Set CONTINUES on the entries of ``out`` (from index ``lo``) inside a run."""
        starts, ends = self._run_starts, self._run_ends
        hi = lo + len(out)
        k = max(bisect.bisect_right(starts, lo) - 1, 0)
        while k < len(starts) and starts[k] < hi:
            a, b = max(starts[k], lo) - lo, min(ends[k] + 1, hi) - lo
            if a < b:
                out[a:b] = [_new_tuple(Entry, (t, i, c | CONTINUES, d)) for t, i, c, d in out[a:b]]
            k += 1

    def continued_run_start(self, index: int) -> int:
        """Return the first index of the CONTINUES run ending at ``index`` (else index + 1)."""
        k = bisect.bisect_right(self._run_starts, index) - 1
        if k >= 0 and self._run_ends[k] >= index and index <= self.last_index():
            return max(self._run_starts[k], self.first_index())
        return index + 1

    def _read(self, lo: int, hi: int, max_bytes: int) -> list[bytes]:
        """Payloads ``[lo, hi)`` within ``max_bytes`` (at least one), across segments."""
        payloads: list[bytes] = []
        size = 0
        while lo < hi and (not payloads or size < max_bytes):
            chunk = self.log.read_payloads(lo, max_records=hi - lo, max_bytes=max_bytes - size)
            chunk_bytes = sum(map(len, chunk))
            if payloads and size + chunk_bytes > max_bytes:
                break
            payloads.extend(chunk)
            size += chunk_bytes
            lo += len(chunk)
        return payloads

    # -- RaftLogStore ---------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Durably store ``entries``, replacing any stored suffix from their first index."""
        if not entries:
            return
        first = entries[0].index
        if first <= self._snap_index:
            raise CompactedError(f"cannot overwrite compacted index {first}")
        last = self.last_index()
        if first > last + 1:
            raise ValueError(f"gap: appending {first} after {last}")
        if first <= last:
            self._truncate_after(first - 1)
        self.log.append_payloads([entry_payload(e) for e in entries])
        self._terms.extend(e.term for e in entries)
        if any(map(_kind_of, entries)):
            for e in entries:
                if e.kind & CONTINUES:
                    self._mark_continued(e.index)
                if base_kind(e.kind):
                    self.control.append(e.index)
                    self._kinds[e.index] = e.kind
        self._cache_extend(entries)

    def _truncate_after(self, index: int) -> None:
        self.log.truncate_after(index)
        del self.control[bisect.bisect_right(self.control, index) :]
        del self._terms[index - self._snap_index :]
        for doomed in [i for i in self._kinds if i > index]:
            del self._kinds[doomed]
        kept = bisect.bisect_right(self._run_starts, index)
        del self._run_starts[kept:], self._run_ends[kept:]
        if kept and self._run_ends[-1] > index:
            self._run_ends[-1] = index
        if self._cache:
            del self._cache[max(0, index + 1 - self._cache_first) :]
            self._cache_bytes = data_bytes(self._cache) + _CACHE_ENTRY_COST * len(self._cache)

    def _cache_extend(self, entries: Sequence[Entry]) -> None:
        """Keep the newest entries, at most ``_CACHE_MAX_BYTES`` counting each entry's data
        and ``_CACHE_ENTRY_COST`` for the tuple itself (so a batch of small records stays
        cached too); when over, drop the oldest down to three quarters (amortised)."""
        if not self._cache or self._cache_first + len(self._cache) != entries[0].index:
            self._cache = list(entries)
            self._cache_first = entries[0].index
            self._cache_bytes = 0
        else:
            self._cache.extend(entries)
        self._cache_bytes += data_bytes(entries) + _CACHE_ENTRY_COST * len(entries)
        cache = self._cache
        if self._cache_bytes <= _CACHE_MAX_BYTES:
            return
        keep = kept_bytes = 0
        for e in reversed(cache):
            cost = len(e.data) + _CACHE_ENTRY_COST
            if kept_bytes + cost > _CACHE_KEEP_BYTES:
                break
            keep += 1
            kept_bytes += cost
        drop = len(cache) - keep
        del cache[:drop]
        self._cache_first += drop
        self._cache_bytes = kept_bytes

    def clear_log_lost(self) -> None:
        """The leader has resent what this node lost (an append was accepted): durably."""
        if self.log_lost:
            self.log_lost = False
            self._write_state()

    def clear_lost_commit(self) -> None:
        """This node holds its lost committed entries again: durably."""
        if self.lost_commit:
            self.lost_commit = 0
            self._write_state()

    def save_hard_state(self, state: HardState) -> None:
        """Replace the hard state: durable at once when term, vote or configuration changed;
        a commit-only change is written at most every ``commit_flush_s``."""
        self._state = state
        w = self._written
        changed = (state.term, state.vote, state.config) != (w.term, w.vote, w.config)
        due = time.monotonic() - self._written_at >= self._commit_flush_s
        if changed or (state.commit != w.commit and due):
            self._write_state()

    def apply_snapshot(self, meta: SnapshotMeta) -> None:
        """Discard the whole log; the next entry will be ``meta.index + 1``.

        If a complete staged snapshot (the leader's records up to ``meta.index``, see
        ``stage_snapshot``) is waiting, it becomes the log, so those records stay readable.
        The state file written here pairs the new snapshot point with the snapshot's
        configuration and (at least) its term: the driver saves the Ready's hard state only
        after this, and a crash in between must not leave the old configuration in effect
        at an index whose entries are gone.
        """
        if not self._swap_in_staged(meta.index):
            self.log.reset(meta.index + 1)
            self.control = []
        self._snap_index, self._snap_term = meta.index, meta.term
        self._terms = array("Q")
        self._kinds.clear()
        self._run_starts, self._run_ends = array("Q"), array("Q")
        self._cache = []
        s = self._state
        if meta.term > s.term:  # a higher term is always safe to record, its vote unknown
            s = replace(s, term=meta.term, vote=None)
        self._state = replace(s, commit=max(s.commit, meta.index), config=meta.config)
        self._write_state()

    def compact(self, index: int) -> None:
        """Drop whole segments below ``index``; the first retained index may stay lower."""
        if index <= self.first_index():
            return
        if index > self.last_index() + 1:
            raise ValueError(f"cannot compact past the last index {self.last_index()}")
        self.log.truncate(index)
        lowest = self.log.lowest_offset
        if lowest - 1 <= self._snap_index:
            return
        point = min(lowest - 1, self.last_index())
        term = self.term(point)
        assert term is not None
        del self._terms[: point - self._snap_index]
        del self.control[: bisect.bisect_left(self.control, self.log.lowest_offset)]
        self._kinds = {i: k for i, k in self._kinds.items() if i > point}
        gone = bisect.bisect_right(self._run_ends, point)
        del self._run_starts[:gone], self._run_ends[:gone]
        self._snap_index, self._snap_term = point, term
        self._write_state()

    # -- snapshot staging -----------------------------------------------------------------

    def stage_snapshot(self, first_offset: int) -> Log:
        """Start receiving a leader's records from ``first_offset`` into a staging log of its
        own: streams received at once (a retry, another leader's) never share files."""
        path = self.directory / f"{_STAGING}-{secrets.token_hex(8)}"
        return Log(path, replace(self._log_config, initial_offset=first_offset))

    def finish_staging(self, staged: Log) -> None:
        """Close a fully received staging log and mark it complete (up to its last record)."""
        last = staged.next_offset - 1
        staged.close()
        write_atomically(Path(staged.directory) / _STAGING_DONE, str(last).encode())

    def discard_staging(self, staged: Log) -> None:
        """Close and delete a staging log whose stream ended early."""
        staged.close()
        shutil.rmtree(staged.directory, ignore_errors=True)

    def _remove_staging(self, complete_up_to: int | None = None) -> None:
        """Delete every staging directory (None: on open, when none is being received), or
        only the complete ones up to ``complete_up_to`` (covered by the snapshot installed)."""
        for name in self._fs.listdir(str(self.directory)):  # staging itself uses the OS
            path = self.directory / name
            if name != _STAGING and not name.startswith(f"{_STAGING}-"):
                continue
            if complete_up_to is None or 0 <= _staged_up_to(path) <= complete_up_to:
                shutil.rmtree(path, ignore_errors=True)

    def _swap_in_staged(self, index: int) -> bool:
        staging = next(
            (p for p in self.directory.glob(f"{_STAGING}-*") if _staged_up_to(p) == index), None
        )
        if staging is None:
            return False
        (staging / _STAGING_DONE).unlink()
        self.log.close()
        live, old = self.directory / "log", self.directory / "log.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(live, old)
        os.replace(staging, live)
        _fsync_dir(self.directory)
        shutil.rmtree(old, ignore_errors=True)
        self._remove_staging(complete_up_to=index)
        self.log = Log(live, self._log_config)
        self.tree = attach_tree(self.log, self.directory / TLOG_DIR) if self._verifiable else None
        self.control = []
        offset = self.log.lowest_offset
        while offset < self.log.next_offset:
            payloads = self.log.read_payloads(offset, max_records=_SCAN_CHUNK, max_bytes=1 << 24)
            self.control.extend(r.offset for r in decode_records(payloads) if r.type)
            offset += len(payloads)
        return True

    def flush(self) -> None:
        """Write a pending commit-only hard state change now."""
        if self._state != self._written:
            self._write_state()

    def close(self) -> None:
        """Write any pending hard state and close the log."""
        try:
            self.flush()
        finally:
            self.log.close()


def _staged_up_to(path: Path) -> int:
    """The last index of a complete staging directory; -1 if it is not complete."""
    try:
        return int((path / _STAGING_DONE).read_text())
    except (OSError, ValueError):
        return -1


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
