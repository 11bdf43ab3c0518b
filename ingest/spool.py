"""The ingestor's write-ahead spool: append-only segment files that survive kill -9.

Layout under ``{var}/ingest/{client_id}/spool``:

- ``{base:020d}.wal``: a segment. ``base`` is the global byte offset of its first record, so a
  position in the spool is one integer that only grows (as in Kafka's log segments).
- ``cursor``: the global offset up to which records have been written to InfluxDB.
- ``lock``: held (``flock``) by the one process that owns this spool.

A record is a 24-byte header ``magic "RVS1", payload length u32, crc32 u32, line count u32,
wall-clock ms u64`` followed by the payload: line-protocol lines joined by ``\\n`` (UTF-8).
The CRC covers the line count, the time and the payload. A record torn by a crash fails its
length or CRC check and is cut off at recovery; its MQTT messages were never acknowledged, so
the broker delivers them again.

One thread appends (:meth:`Spool.append`, then :meth:`Spool.sync`, which makes everything
appended durable and publishes the new end); another reads (:class:`SpoolReader`) up to that
durable end, and advances the cursor (:meth:`Spool.commit`) after InfluxDB took the records.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"RVS1"
HEADER = struct.Struct("<4sIIIQ")
META = struct.Struct("<IQ")
SUFFIX = ".wal"
# A segment is closed and a new one started beyond this size; written segments are deleted
# whole, so the disk holds at most the bound plus one segment.
SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolLocked(RuntimeError):
    """Another process owns this spool (same client id and var directory)."""


@dataclass(slots=True)
class Record:
    """One spooled record: its global offsets, line count, creation time and payload."""

    start: int
    end: int
    lines: int
    wall_ms: int
    payload: bytes


def _segment_name(base: int) -> str:
    return f"{base:020d}{SUFFIX}"


def encode_record(payload: bytes, lines: int, wall_ms: int) -> bytes:
    meta = META.pack(lines, wall_ms)
    crc = zlib.crc32(payload, zlib.crc32(meta))
    return HEADER.pack(MAGIC, len(payload), crc, lines, wall_ms) + payload


def read_records(data: bytes | memoryview, base: int, limit: int | None = None) -> tuple[list[Record], int]:
    """Decode records from a segment's bytes; returns them and the end of the last good one."""
    out: list[Record] = []
    pos = 0
    size = len(data) if limit is None else min(len(data), limit)
    while pos + HEADER.size <= size:
        magic, length, crc, lines, wall_ms = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or end > size:
            break
        payload = bytes(data[pos + HEADER.size:end])
        if zlib.crc32(payload, zlib.crc32(META.pack(lines, wall_ms))) != crc:
            break
        out.append(Record(base + pos, base + end, lines, wall_ms, payload))
        pos = end
    return out, pos


class Spool:
    """Segment files, the durable end and the written cursor of one ingestor."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int, fsync: bool = True,
                 segment_bytes: int = SEGMENT_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        # Small bounds need small segments, or a full spool could not free a segment.
        self.segment_bytes = max(64 * 1024, min(segment_bytes, max_bytes // 4))
        self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(f"spool {self.dir} is in use by another ingestor process "
                              f"(give each ingestor its own --ingest-client-id)") from None
        self.cond = threading.Condition()
        self.truncated_bytes = 0
        self.segments: list[int] = self._recover()
        self.cursor = self._read_cursor()
        self.durable_end = self._end_of_last()
        self._fd = -1
        self._base = self.durable_end
        self._size = 0
        self._oldest_wall_ms: dict[int, int] = {}
        self._open_segment(self.durable_end)

    # -- startup -------------------------------------------------------------------------

    def _recover(self) -> list[int]:
        """List segments and cut each one at its first bad record.

        A crash can only tear the newest segment's last record, whose messages were never
        acknowledged (the broker sends them again). A bad record in an older segment means
        the disk lost data: that segment's rest is cut and counted in ``lost_bytes``, and the
        later segments are kept (the reader steps over the gap).
        """
        bases = sorted(int(p.name[:-len(SUFFIX)]) for p in self.dir.glob("*" + SUFFIX)
                       if p.name[:-len(SUFFIX)].isdigit())
        self.lost_bytes = 0
        for i, base in enumerate(bases):
            path = self.dir / _segment_name(base)
            data = path.read_bytes()
            _, good = read_records(data, base)
            if good < len(data):
                self.truncated_bytes += len(data) - good
                if i < len(bases) - 1:
                    self.lost_bytes += len(data) - good
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
        return bases

    def _end_of_last(self) -> int:
        if not self.segments:
            return self.cursor
        base = self.segments[-1]
        return base + (self.dir / _segment_name(base)).stat().st_size

    def _read_cursor(self) -> int:
        try:
            value = int((self.dir / "cursor").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            value = 0
        first = self.segments[0] if self.segments else value
        return max(value, first) if self.segments else value

    def _open_segment(self, base: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        path = self.dir / _segment_name(base)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._base = base
        self._size = os.fstat(self._fd).st_size
        if base not in self.segments:
            self.segments.append(base)
            if self.fsync:
                dfd = os.open(self.dir, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    # -- appending (one thread) ------------------------------------------------------------

    def unwritten_bytes(self) -> int:
        return self.durable_end - self.cursor

    def full(self, extra: int = 0) -> bool:
        """True when appending ``extra`` more bytes would pass the bound.

        An empty spool always takes the next group, however large, so a bound smaller than
        one group cannot stall the stream.
        """
        unwritten = self.unwritten_bytes()
        return unwritten > 0 and unwritten + extra > self.max_bytes

    def append(self, payload: bytes, lines: int, wall_ms: int | None = None) -> None:
        """Append one record (not yet durable: call :meth:`sync`)."""
        if self._size >= self.segment_bytes or (self._size and self.cursor >= self._base + self._size):
            # Rotate when big, or when the reader has taken all of it so it can be deleted.
            self._open_segment(self._base + self._size)
        rec = encode_record(payload, lines, int(time.time() * 1000) if wall_ms is None else wall_ms)
        os.write(self._fd, rec)
        self._size += len(rec)

    def sync(self) -> int:
        """Make every appended record durable; wake the reader; return the durable end."""
        if self.fsync:
            os.fdatasync(self._fd)
        with self.cond:
            self.durable_end = self._base + self._size
            self.cond.notify_all()
        return self.durable_end

    # -- reading side ----------------------------------------------------------------------

    def commit(self, offset: int) -> None:
        """Records before ``offset`` are in InfluxDB: save the cursor, delete spent segments."""
        with self.cond:
            self.cursor = offset
            self.cond.notify_all()
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(str(offset))
        os.replace(tmp, self.dir / "cursor")
        while len(self.segments) > 1 and self.segments[1] <= offset:
            base = self.segments.pop(0)
            try:
                (self.dir / _segment_name(base)).unlink()
            except FileNotFoundError:
                pass

    def segment_for(self, offset: int) -> int | None:
        """The base of the segment that holds ``offset`` (None when past the end)."""
        found = None
        for base in list(self.segments):
            if base <= offset:
                found = base
            else:
                break
        return found

    def oldest_wall_ms(self) -> int | None:
        """Creation time of the oldest record not yet written (None when there is none)."""
        pos = self.cursor
        while pos < self.durable_end:
            base = self.segment_for(pos)
            if base is None:
                return None
            try:
                with open(self.dir / _segment_name(base), "rb") as f:
                    f.seek(pos - base)
                    head = f.read(HEADER.size)
            except FileNotFoundError:
                return None
            if len(head) == HEADER.size:
                return HEADER.unpack(head)[4]
            nxt = [b for b in list(self.segments) if b > base]
            if not nxt:
                return None
            pos = nxt[0]
        return None

    def disk_bytes(self) -> int:
        total = 0
        for base in list(self.segments):
            try:
                total += (self.dir / _segment_name(base)).stat().st_size
            except FileNotFoundError:
                pass
        return total

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class SpoolReader:
    """Reads records from the cursor to the durable end, segment by segment."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.position = spool.cursor

    def available(self) -> int:
        return self.spool.durable_end - self.position

    def read(self, max_lines: int, max_bytes: int = 16 * 1024 * 1024) -> list[Record]:
        """Records from the current position on, up to about ``max_lines`` lines.

        Reads record by record (header, then payload), never past the durable end (the
        appender may be mid-record there), so a deep spool costs no more per batch than a
        shallow one.
        """
        out: list[Record] = []
        lines = size = 0
        while lines < max_lines and size < max_bytes:
            end = self.spool.durable_end
            if self.position >= end:
                break
            base = self.spool.segment_for(self.position)
            if base is None:
                break
            path = self.spool.dir / _segment_name(base)
            exhausted = False
            with open(path, "rb") as f:
                f.seek(self.position - base)
                while lines < max_lines and size < max_bytes and self.position < end:
                    rec = self._next(f, path)
                    if rec is None:
                        exhausted = True
                        break
                    out.append(rec)
                    lines += rec.lines
                    size += len(rec.payload)
                    self.position = rec.end
            if not exhausted:
                break
            # The end of a closed segment: the durable end lies in a later one.
            nxt = [b for b in list(self.spool.segments) if b > base]
            if not nxt:
                break
            self.position = nxt[0]
        return out

    def _next(self, f, path: Path) -> Record | None:
        """The record at the file's position, or None at the end of the segment."""
        head = f.read(HEADER.size)
        if not head:
            return None
        if len(head) < HEADER.size:
            raise RuntimeError(f"spool record at offset {self.position} in {path} is torn")
        magic, length, crc, lines, wall_ms = HEADER.unpack(head)
        payload = f.read(length) if magic == MAGIC else b""
        if magic != MAGIC or len(payload) != length or \
                zlib.crc32(payload, zlib.crc32(META.pack(lines, wall_ms))) != crc:
            raise RuntimeError(f"spool record at offset {self.position} in {path} is corrupt")
        return Record(self.position, self.position + HEADER.size + length, lines, wall_ms, payload)
