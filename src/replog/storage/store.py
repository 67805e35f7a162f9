"""Store: the append-only file of frames that is a segment's source of truth."""

from __future__ import annotations

from replog.storage.codec import FRAME_HEADER, FRAME_HEADER_BYTES, FrameScan, crc32c, scan_frames
from replog.storage.files import FileHandle, FileSystem

__all__ = ["Store", "StoreCorruptionError"]

_SCAN_CHUNK_BYTES = 1 << 20


class StoreCorruptionError(Exception):
    """A frame at a position is torn or fails its CRC (internal; the Log maps it)."""


class Store:
    """An append-only file of length-prefixed, CRC32C-checked frames.

    Appends are buffered in memory until ``flush()``, which hands the whole buffer to the OS
    in one write call; ``sync()`` also fsyncs. Reads see unflushed data (they flush first).
    Not task-safe for writers: the Log serialises appends. Concurrent readers must stay below
    ``flushed_size`` so that they never flush (the Log only publishes flushed records).
    """

    def __init__(self, fs: FileSystem, path: str) -> None:
        self.path = path
        self._file: FileHandle = fs.open(path)
        self._flushed = self._file.size()
        # Pending frames as chunks: a batch arrives framed already and is written as is.
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    @property
    def size(self) -> int:
        """Bytes in the store, buffered ones included."""
        return self._flushed + self._pending_bytes

    @property
    def flushed_size(self) -> int:
        """Bytes handed to the OS; concurrent readers stay below this."""
        return self._flushed

    def append(self, payload: bytes) -> tuple[int, int]:
        """Buffer one frame; return ``(bytes_written, position)`` of the frame."""
        position = self._flushed + self._pending_bytes
        frame = FRAME_HEADER.pack(len(payload), crc32c(payload)) + payload
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        return len(frame), position

    def append_frames(self, frames: bytes) -> int:
        """Buffer already-framed bytes (from ``codec.encode_frames``); return their position."""
        position = self.size
        self._pending.append(frames)
        self._pending_bytes += len(frames)
        return position

    def flush(self) -> None:
        """Hand buffered frames to the OS in one write call."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._pending_bytes = 0
        try:
            self._file.append(data)
        except OSError:
            # How much reached the file is unknown; the Log refuses further appends
            # and the next open cuts any torn tail.
            self._flushed = self._file.size()
            raise
        self._flushed += len(data)

    def sync(self) -> None:
        """Flush, then make every frame durable (fdatasync)."""
        self.flush()
        self._file.sync()

    def fsync(self) -> None:
        """fdatasync what was already flushed, leaving the buffer alone.

        Safe to call from another thread while the owner appends: group commit does.
        """
        self._file.sync()

    def read_at(self, size: int, position: int) -> bytes:
        """Return up to ``size`` raw bytes from ``position`` (fewer only at the end)."""
        if position + size > self._flushed and self._pending:
            self.flush()
        return self._file.pread(size, position)

    def read(self, position: int, size_hint: int = 0) -> bytes:
        """Return the payload of the frame at ``position`` after checking its CRC.

        ``size_hint``, the frame's total size when known (from the index), saves a read.
        Raises StoreCorruptionError for a torn frame or a CRC mismatch.
        """
        want = size_hint if size_hint >= FRAME_HEADER_BYTES else FRAME_HEADER_BYTES
        data = self.read_at(want, position)
        if len(data) < FRAME_HEADER_BYTES:
            raise StoreCorruptionError(f"torn frame header at position {position}")
        length, crc = FRAME_HEADER.unpack_from(data)
        end = FRAME_HEADER_BYTES + length
        if len(data) < end:
            if position + end > self.size:
                raise StoreCorruptionError(f"frame at {position} runs past the end of the store")
            data = self.read_at(end, position)
        payload = data[FRAME_HEADER_BYTES:end]
        if crc32c(payload) != crc:
            raise StoreCorruptionError(f"CRC mismatch in frame at position {position}")
        return payload

    def scan(self, position: int, max_payload_bytes: int) -> FrameScan:
        """Read frames from ``position`` to the end; stop at the first torn or corrupt one."""
        self.flush()
        end_of_file = self._flushed
        positions: list[int] = []
        payloads: list[bytes] = []
        chunk = _SCAN_CHUNK_BYTES
        stop = "end"
        while position < end_of_file:
            data = self._file.pread(chunk, position)
            found = scan_frames(data, position, max_payload_bytes)
            positions += found.positions
            payloads += found.payloads
            stop = found.stop
            reached_end = position + len(data) >= end_of_file
            if found.stop == "torn" and not reached_end:
                # A frame straddles the chunk boundary: read on from it, wide enough for it.
                chunk = max(chunk, found.end - position, FRAME_HEADER_BYTES + max_payload_bytes)
                chunk = min(chunk, _SCAN_CHUNK_BYTES + FRAME_HEADER_BYTES + max_payload_bytes)
                if found.end == position and len(data) >= FRAME_HEADER_BYTES + max_payload_bytes:
                    stop = "corrupt"
                    break
                position = found.end
                continue
            position = found.end
            if found.stop != "end" or reached_end:
                break
        return FrameScan(positions, payloads, position, stop)

    def truncate(self, size: int) -> None:
        """Cut the store to ``size`` bytes (a frame boundary) and make the cut durable."""
        self.flush()
        self._file.truncate(size)
        self._file.sync()
        self._flushed = size

    def release(self) -> None:
        """Close the file, dropping anything unflushed (for a removed segment)."""
        self._pending = []
        self._pending_bytes = 0
        self._file.close()

    def close(self) -> None:
        """Flush and close the file (the Log syncs first when its policy asks)."""
        try:
            self.flush()
        finally:
            self._file.close()
