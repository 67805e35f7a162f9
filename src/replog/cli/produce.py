"""``replog produce``: append the VALUE arguments, or one record per line of stdin.

Every record's outcome is waited for and counted, in send order, as records go (a bounded
window of futures, so millions of piped lines take bounded memory). Exit status: 0 when
every record was acknowledged; 1 when any was not (or on any other replog error); 130 when
interrupted; 2 for bad usage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import IO, Annotated, Any

import typer

from replog.cli.client_commands import (
    _DEFAULT_SERVER,
    CaOpt,
    CertOpt,
    KeyOpt,
    ServerOpt,
    TopicOpt,
    _client,
    _errors,
)
from replog.cli.produce_report import DeliveryTally, progress_text
from replog.client import Client, Producer
from replog.client.record_future import RecordFuture
from replog.errors import ReplogError

__all__ = ["EXIT_INTERRUPTED", "EXIT_NOT_ACKNOWLEDGED", "produce_command"]

EXIT_NOT_ACKNOWLEDGED = 1  # some record was not acknowledged (the same as any replog error)
EXIT_INTERRUPTED = 130  # Ctrl-C: what was sent is flushed and reported first

# Futures are told to the tally once done, oldest first; while more than this many records
# (or bytes of their values, which a future keeps alive through its batch) wait, the reader
# waits for the oldest.
_WINDOW_RECORDS = 100_000
_WINDOW_BYTES = 64 * 1024 * 1024
_READ_BYTES = 64 * 1024  # stdin is read this much at a time (or what a pipe has)
_PROGRESS_INTERVAL_S = 0.1  # the progress line is redrawn at most ten times a second


def _tell(tally: DeliveryTally, future: RecordFuture, *, block: bool = True) -> bool:
    """Count the outcome of ``future``, waiting for it if ``block``; False (counting
    nothing) when it is still in flight."""
    if block and not future.done():
        # Not a bare future.result(): a RecordFuture shares its condition with the
        # producer's other futures, and Future.result() raises TimeoutError when woken
        # for another one. wait() watches this one alone.
        wait([future])
    try:
        offset = future.result(timeout=0)  # one look, under one lock
    except TimeoutError as exc:
        if not isinstance(exc, ReplogError):  # DeadlineExceededError is a TimeoutError too
            return False
        tally.refused(exc)
    except Exception as exc:  # the Producer fails a future with the cause
        tally.refused(exc)
    else:
        tally.acknowledged(future.partition, offset)
    return True


class _Interrupts:
    """Ctrl-C (SIGINT) while records are being sent or counted: noted, and acted on once
    the current block is sent (a KeyboardInterrupt inside ``send`` could leave a batch
    half-written, one inside a count could count a record twice). While input or
    acknowledgements are awaited, and at a second Ctrl-C, it raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.pending = False  # a Ctrl-C is waiting to be acted on
        self.raising = True  # a Ctrl-C now raises KeyboardInterrupt
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.raising or self.pending:
            raise KeyboardInterrupt
        self.pending = True


class _Window:
    """The futures of sent records, in chunks, oldest first, told to a tally in send order.

    The reading thread holds ``lock`` except while it waits for input (see ``blocks``), so
    the progress thread can count the outcomes that arrive while stdin is idle.
    """

    def __init__(self, tally: DeliveryTally) -> None:
        self.tally = tally
        self.lock = threading.Lock()
        self._chunks: deque[tuple[list[RecordFuture], int]] = deque()  # (futures, bytes)
        self._told = 0  # futures of the oldest chunk already told
        self._records = 0  # futures not yet told
        self._bytes = 0  # bytes of the values of the chunks not yet told

    def blocks(
        self, stream: IO[bytes], interrupts: _Interrupts
    ) -> Generator[tuple[list[bytes], int], None, None]:
        """The lines of ``stream`` without their newline, as many as a read brings, with
        the bytes they took. ``lock`` is held while the caller handles them and released
        while more input is awaited (when a Ctrl-C raises, see ``_Interrupts``)."""
        read, lock = getattr(stream, "read1", stream.read), self.lock
        started: list[bytes] = []  # pieces of a line not ended yet
        lock.acquire()
        try:
            while True:
                lock.release()
                interrupts.raising = True
                try:
                    data = read(_READ_BYTES)
                finally:
                    interrupts.raising = False
                    lock.acquire()
                if not data:
                    if started:  # a last line without a newline
                        line = b"".join(started)
                        yield [line], len(line)
                    return
                end = data.rfind(b"\n")
                if end < 0:
                    started.append(data)
                    continue
                started.append(data[:end])
                text = b"".join(started)
                started = [data[end + 1 :]] if end + 1 < len(data) else []
                yield text.split(b"\n"), len(text) + 1
        finally:
            lock.release()

    def add(self, futures: list[RecordFuture], size: int) -> None:
        """Watch the futures of records sent (``size``: the bytes of their values)."""
        self._chunks.append((futures, size))
        self._records += len(futures)
        self._bytes += size

    def collect(self, *, bounded: bool = True, everything: bool = False) -> None:
        """Tell the outcomes known, oldest first, up to a record still in flight; with
        ``bounded``, first wait until the window is within its bounds; with
        ``everything``, until every outcome is told. ``lock`` held."""
        chunks, tally = self._chunks, self.tally
        while chunks:
            futures, size = chunks[0]
            block = everything or (
                bounded and (self._records > _WINDOW_RECORDS or self._bytes > _WINDOW_BYTES)
            )
            told = self._told
            for index in range(told, len(futures)):
                if not _tell(tally, futures[index], block=block):
                    self._records -= index - told
                    self._told = index
                    return
            self._records -= len(futures) - told
            chunks.popleft()
            self._told = 0
            self._bytes -= size

    def collect_now(self) -> None:
        """``collect`` from another thread, never waiting: unless the reader holds the
        window, tell the outcomes known."""
        if self.lock.acquire(blocking=False):
            try:
                self.collect(bounded=False)
            finally:
                self.lock.release()


@dataclass
class _StdinRun:
    """What the progress line shows of a run over stdin (written by the reading thread)."""

    window: _Window
    started: float
    total_bytes: int | None
    sent: int = 0
    read_bytes: int = 0
    clock: Callable[[], float] = field(default=time.monotonic)

    def progress(self) -> str:
        """The progress line's text now (after counting the outcomes already known)."""
        self.window.collect_now()
        elapsed = self.clock() - self.started
        acked = self.window.tally.acked
        return progress_text(self.sent, acked, elapsed, self.read_bytes, self.total_bytes)


class _ProgressLine:
    """A line on a terminal redrawn every ``interval_s`` by a thread, and erased at the end."""

    def __init__(
        self, stream: IO[str], text: Callable[[], str], interval_s: float = _PROGRESS_INTERVAL_S
    ) -> None:
        self._stream, self._text, self._interval_s = stream, text, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replog-progress", daemon=True)

    def __enter__(self) -> _ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._write("\r\x1b[K")

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:  # a wrapped line could not be redrawn in place: cut it to the width
                width = os.get_terminal_size(self._stream.fileno()).columns
            except (OSError, ValueError):
                width = 0
            width = width or 80  # 0: a terminal that does not say
            self._write(f"\r{self._text()[: width - 1]}\x1b[K")

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()


def produce_command(  # noqa: PLR0917  (typer options)
    values: Annotated[
        list[str] | None,
        typer.Argument(help="Values to produce.", show_default="none: one per stdin line"),
    ] = None,
    server: ServerOpt = _DEFAULT_SERVER,
    record_key: Annotated[
        str | None,
        typer.Option(
            "--record-key",
            help="Key for every record (it chooses the partition by murmur2).",
            show_default="none",
        ),
    ] = None,
    linger_ms: Annotated[float, typer.Option(help="Producer batching delay.")] = 5.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print neither offsets nor the summary.")
    ] = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    topic: TopicOpt = "",
    partition: Annotated[
        int | None,
        typer.Option(help="The partition.", show_default="by the key, or a sticky one"),
    ] = None,
    delivery_timeout_ms: Annotated[
        int,
        typer.Option(
            min=1,
            help="How long a record is resent (after a failover, a lost connection) before "
            "it counts as not acknowledged.",
        ),
    ] = 10_000,
) -> None:
    """Append records: the VALUE arguments, or one record per line of stdin, in order.

    With --topic, records go to that topic (an unknown one is an error); with --partition
    to that partition; otherwise the key's partition, or a sticky one for keyless records.
    Offsets of VALUE arguments are printed as OFFSET, or PARTITION:OFFSET when a topic or
    partition is given; for stdin a summary goes to stderr, with a progress line when
    stderr is a terminal (and stdin is not). Exits 1 if any record was not acknowledged,
    saying how many were not and which offsets the others got; 130 when interrupted.
    """
    named = bool(topic) or partition is not None
    with _errors(), _client(server, ca, cert, key) as client:
        key_bytes = record_key.encode() if record_key is not None else None
        # One batch in flight keeps send order even where the Producer falls back from
        # idempotence (a server without producer ids, keys whose partition it cannot
        # learn); measured no slower for piped lines than several in flight.
        options: dict[str, Any] = {
            "linger_ms": linger_ms,
            "topic": topic,
            "partition": partition,
            "max_in_flight": 1,
            "delivery_timeout_ms": delivery_timeout_ms,
        }
        if values:
            tally = _produce_values(client, values, key_bytes, options, quiet, named)
            _finish(tally, named=named, quiet=True, stopped=False, interrupted=False)
        else:
            _produce_stdin(client, key_bytes, options, quiet, named)


def _produce_values(  # noqa: PLR0917
    client: Client,
    values: list[str],
    key: bytes | None,
    options: dict[str, Any],
    quiet: bool,
    named: bool,
) -> DeliveryTally:
    """Send the VALUE arguments and print the offset of each acknowledged one."""
    tally = DeliveryTally(item="value")
    with Producer(client, **options) as producer:
        futures = [producer.send(v.encode(), key) for v in values]
    for future in futures:
        told = tally.acked
        _tell(tally, future)
        if tally.acked > told and not quiet:
            offset = future.result()
            print(f"{future.partition}:{offset}" if named else offset)
    return tally


def _produce_stdin(
    client: Client, key: bytes | None, options: dict[str, Any], quiet: bool, named: bool
) -> None:
    """Send one record per line of stdin, counting outcomes as they come; then report."""
    stdin = sys.stdin.buffer
    tally = DeliveryTally(item="line")
    window = _Window(tally)
    run = _StdinRun(window, time.monotonic(), _file_size(stdin))
    stopped = interrupted = False
    unsent: ReplogError | None = None  # why send() refused the last line read
    # Not while a user types the lines: the redrawn line would overwrite their echo.
    show = not quiet and sys.stderr.isatty() and not stdin.isatty()
    progress = _ProgressLine(sys.stderr, run.progress) if show else contextlib.nullcontext()
    with progress, _Interrupts() as interrupts, Producer(client, **options) as producer:
        blocks = window.blocks(stdin, interrupts)
        send = producer.send
        try:
            for lines, size in blocks:
                futures: list[RecordFuture] = []
                try:
                    for line in lines:
                        futures.append(send(line, key))
                finally:  # watched even if a send raised
                    window.add(futures, size)
                run.sent += len(futures)
                run.read_bytes += size
                window.collect()
                if tally.fatal or interrupts.pending:  # the server is gone, refuses us, or ^C
                    stopped, interrupted = True, interrupts.pending
                    break
        except KeyboardInterrupt:
            stopped = interrupted = True
        except ReplogError as exc:  # e.g. the topic's metadata could not be refreshed
            stopped, unsent = True, exc
        finally:
            blocks.close()  # releases the window's lock
        interrupts.raising = True  # a Ctrl-C stops the wait for acknowledgements
        producer.flush()
        interrupts.raising = False
        with window.lock:
            window.collect(everything=True)
    if unsent is not None:
        tally.refused(unsent)  # the line after every one sent
    _finish(tally, named=named, quiet=quiet, stopped=stopped, interrupted=interrupted)


def _finish(
    tally: DeliveryTally, *, named: bool, quiet: bool, stopped: bool, interrupted: bool
) -> None:
    """Print the outcome (one line on stderr) and exit with its status."""
    if tally.failed:
        print(f"replog: error: {tally.error_line(named=named, stopped=stopped)}", file=sys.stderr)
        raise typer.Exit(EXIT_NOT_ACKNOWLEDGED)
    if interrupted:
        print(f"replog: interrupted: {tally.summary(named=named)}", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED)
    if not quiet:
        print(tally.summary(named=named), file=sys.stderr)


def _file_size(stream: IO[bytes]) -> int | None:
    """The size of a regular file behind ``stream``; None for a pipe or terminal."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None
