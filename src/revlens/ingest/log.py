"""The delivery log: an append-only, checksummed, segmented file of raw webhook deliveries.

A delivery is acknowledged only once its record is written and `fdatasync`ed here, so the log is
the source of truth; the analytics store is derived from it and can be rebuilt (`revlens reprocess`).
Appending is cheap (one write and one fdatasync per batch of deliveries), which is what lets one
server process acknowledge thousands of durable deliveries a second (see docs/benchmarks.md).

Record layout (little-endian): magic b"RLG1", payload length u32, crc32(payload) u32, then the payload:
received-at milliseconds i64, endpoint id length u16, endpoint id, raw body. Positions are global byte
offsets; segment files are named after the position of their first byte.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"RLG1"
HEADER = struct.Struct("<4sII")
META = struct.Struct("<qH")
# A new segment starts once the current one passes this size.
SEGMENT_BYTES = 64 * 1024 * 1024
SUFFIX = ".seg"
# Bytes read at a time when reading records back (catch-up after a backlog, reprocess).
READ_BYTES = 4 * 1024 * 1024


class LogError(OSError):
    """The delivery log cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Record:
    """One raw delivery as kept in the log."""

    endpoint_id: str
    received_ms: int
    body: bytes

    def encode(self) -> bytes:
        endpoint = self.endpoint_id.encode("utf-8")
        payload = META.pack(self.received_ms, len(endpoint)) + endpoint + self.body
        return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True, slots=True)
class Entry:
    """A record read back with its position and the position just after it."""

    position: int
    end: int
    record: Record


def _decode(payload: bytes) -> Record:
    received_ms, n = META.unpack_from(payload)
    start = META.size
    endpoint = payload[start : start + n].decode("utf-8")
    return Record(endpoint, received_ms, payload[start + n :])


def _segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            found.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(found)


def _scan(data: bytes, base: int) -> Iterator[Entry]:
    """Complete, checksummed records of one segment's bytes; stops at the first torn or bad one."""
    offset, size = 0, len(data)
    while offset + HEADER.size <= size:
        magic, length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if magic != MAGIC or start + length > size:
            return
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            return
        yield Entry(base + offset, base + start + length, _decode(payload))
        offset = start + length


def _scan_file(path: Path, base: int, offset: int = 0) -> Iterator[Entry]:
    """`_scan` of a segment from `offset` (a record's start), reading READ_BYTES at a time, so that
    reading a log never holds more than about one chunk of it in memory."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data, at = b"", offset  # unparsed bytes, and the segment offset of their first byte
        while chunk := fh.read(READ_BYTES):
            data += chunk
            used = 0
            for entry in _scan(data, base + at):
                used = entry.end - base - at
                yield entry
            data, at = data[used:], at + used
            if len(data) >= HEADER.size:
                magic, length, _ = HEADER.unpack_from(data)
                if magic != MAGIC or len(data) >= HEADER.size + length:
                    return  # a bad record (no magic, or whole but failing its checksum) ends the segment
        # Whatever is left is a torn tail: a write that never completed, so was never acknowledged.


def read(directory: Path, start: int = 0) -> Iterator[Entry]:
    """Every complete record at or after `start`, in order (safe while a writer appends). `start`
    is 0 or a record's end (where the next one starts): segments wholly before it are not read."""
    segments = _segments(directory)
    for i, (base, path) in enumerate(segments):
        following = segments[i + 1][0] if i + 1 < len(segments) else None
        if following is not None and following <= start:
            continue
        offset = start - base if base < start else 0
        if offset and offset >= path.stat().st_size:
            continue  # nothing at or after `start` in this segment (yet)
        if offset and not _record_starts_at(path, offset):
            # Not a record's start: read the segment from its beginning instead.
            yield from (entry for entry in _scan_file(path, base) if entry.position >= start)
            continue
        yield from _scan_file(path, base, offset)


def _record_starts_at(path: Path, offset: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(len(MAGIC)) == MAGIC


def read_at(directory: Path, positions: Iterable[int]) -> Iterator[Entry]:
    """The records starting at the given positions (each must be a record's start)."""
    segments = _segments(directory)
    bases = [base for base, _ in segments]
    for position in sorted(set(positions)):
        i = bisect.bisect_right(bases, position) - 1
        if i < 0:
            raise LogError(f"no log segment holds position {position}")
        base, path = segments[i]
        with open(path, "rb") as fh:
            fh.seek(position - base)
            head = fh.read(HEADER.size)
            if len(head) < HEADER.size:
                raise LogError(f"no record at log position {position}")
            magic, length, crc = HEADER.unpack(head)
            payload = fh.read(length)
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            raise LogError(f"damaged record at log position {position}")
        yield Entry(position, position + HEADER.size + length, _decode(payload))


class DeliveryLog:
    """The writer side of the log. One process at a time holds it (an flock on `LOCK`)."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._base = 0
        self._size = 0

    @property
    def end(self) -> int:
        """Position just after the last durable record."""
        return self._base + self._size

    def open(self) -> int:
        """Take the lock, cut any torn tail left by a crash, and return the end position."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise LogError(f"the delivery log in {self.directory} is in use by another revlens process") from None
        self._lock_fd = lock_fd
        segments = _segments(self.directory)
        if segments:
            self._base, path = segments[-1]
            good = 0
            for entry in _scan_file(path, 0):
                good = entry.end
            if good != path.stat().st_size:  # a write that never completed, so never acknowledged
                with open(path, "r+b") as fh:
                    fh.truncate(good)
                    os.fsync(fh.fileno())
            self._size = good
        else:
            self._base, self._size = 0, 0
        self._open_segment()
        return self.end

    def _rotate(self) -> None:
        """Start the next segment; if it cannot be created (disk full), keep appending to nothing and
        raise LogError, leaving the current segment open and untouched for the next attempt."""
        old_fd, old_base, old_size = self._fd, self._base, self._size
        self._base, self._size = self.end, 0
        try:
            self._open_segment()
        except OSError as exc:
            self._fd, self._base, self._size = old_fd, old_base, old_size
            raise LogError(f"cannot start a new log segment: {exc.strerror or exc}") from exc
        if old_fd is not None:
            os.close(old_fd)

    def _open_segment(self) -> None:
        path = self.directory / f"{self._base:020d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # make the new file's name durable too
            finally:
                os.close(dir_fd)
        except OSError:
            os.close(fd)
            # Never leave an empty segment behind whose name claims positions the old one still fills.
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        self._fd = fd

    def append(self, encoded: list[bytes]) -> list[int]:
        """Write encoded records and fdatasync once; returns each record's position.

        On any error the segment is cut back to where it was, so a failed batch leaves no trace.
        """
        if self._fd is None:
            raise LogError("delivery log is not open")
        if self._size >= self.segment_bytes:
            self._rotate()
        fd = self._fd
        positions = []
        pos = self.end
        for item in encoded:
            positions.append(pos)
            pos += len(item)
        data = b"".join(encoded)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fdatasync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, self._size)
                os.fdatasync(fd)
            except OSError:
                pass
            raise LogError(f"cannot write the delivery log: {exc.strerror or exc}") from exc
        self._size += len(data)
        return positions

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
