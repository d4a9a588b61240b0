import itertools
from pathlib import Path

import pytest

from revlens.ingest.log import HEADER, DeliveryLog, LogError, Record, read, read_at


def _records(n: int, endpoint: str = "we_1") -> list[Record]:
    return [Record(endpoint, 1_700_000_000_000 + i, b'{"id": "evt_%d"}' % i) for i in range(n)]


def test_append_then_read_back(tmp_path: Path) -> None:
    log = DeliveryLog(tmp_path)
    assert log.open() == 0
    records = _records(5)
    positions = log.append([r.encode() for r in records])
    assert positions[0] == 0 and positions == sorted(positions)
    entries = list(read(tmp_path))
    assert [e.record for e in entries] == records
    assert [e.position for e in entries] == positions
    assert entries[-1].end == log.end
    assert [e.record for e in read(tmp_path, positions[3])] == records[3:]
    assert [e.record for e in read_at(tmp_path, [positions[4], positions[1]])] == [records[1], records[4]]
    log.close()


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    log = DeliveryLog(tmp_path)
    log.open()
    log.append([r.encode() for r in _records(3)])
    end = log.end
    log.close()
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as fh:  # a crash in the middle of writing a fourth record
        fh.write(Record("we_1", 1, b"x" * 100).encode()[:50])
    log = DeliveryLog(tmp_path)
    assert log.open() == end
    assert segment.stat().st_size == end
    assert len(list(read(tmp_path))) == 3
    log.append([Record("we_1", 2, b"after").encode()])
    assert [e.record.body for e in read(tmp_path)][-1] == b"after"
    log.close()


def test_corrupt_record_stops_reading(tmp_path: Path) -> None:
    log = DeliveryLog(tmp_path)
    log.open()
    positions = log.append([r.encode() for r in _records(3)])
    log.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[positions[1] + HEADER.size + 3] ^= 0xFF  # flip a byte inside the second record
    segment.write_bytes(bytes(data))
    assert len(list(read(tmp_path))) == 1
    with pytest.raises(LogError, match="damaged"):
        list(read_at(tmp_path, [positions[1]]))


def test_segments_rotate(tmp_path: Path) -> None:
    log = DeliveryLog(tmp_path, segment_bytes=200)
    log.open()
    records = _records(20)
    for r in records:
        log.append([r.encode()])
    log.close()
    assert len(list(tmp_path.glob("*.seg"))) > 3
    entries = list(read(tmp_path))
    assert [e.record for e in entries] == records
    assert all(a.end == b.position for a, b in itertools.pairwise(entries))
    log = DeliveryLog(tmp_path, segment_bytes=200)
    assert log.open() == entries[-1].end
    log.close()


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    first = DeliveryLog(tmp_path)
    first.open()
    with pytest.raises(LogError, match="in use"):
        DeliveryLog(tmp_path).open()
    first.close()
    second = DeliveryLog(tmp_path)
    second.open()
    second.close()


def test_failed_write_leaves_no_trace(tmp_path: Path) -> None:
    log = DeliveryLog(tmp_path)
    log.open()
    log.append([_records(1)[0].encode()])
    end = log.end
    import os

    fd = log._fd
    assert fd is not None
    os.close(fd)  # simulate an I/O failure: every write now fails
    log._fd = os.open(os.devnull, os.O_RDONLY)
    with pytest.raises(LogError):
        log.append([_records(1)[0].encode()])
    assert log.end == end
    log.close()
    assert len(list(read(tmp_path))) == 1


def _many_segments(directory: Path) -> tuple[list[Record], list[int]]:
    """Forty records of varied sizes over several small segments, ending in a torn write."""
    log = DeliveryLog(directory, segment_bytes=600)
    log.open()
    records = [Record("we_1", i, b"x" * (13 * i % 170)) for i in range(40)]
    positions: list[int] = []
    for i in range(0, 40, 3):
        positions += log.append([r.encode() for r in records[i : i + 3]])
    log.close()
    last = sorted(directory.glob("*.seg"))[-1]
    with open(last, "ab") as fh:
        fh.write(Record("we_1", 99, b"y" * 80).encode()[:30])
    return records, positions


def test_reading_from_a_position_in_small_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read back a few bytes at a time (records straddle chunks), from every record boundary: the
    same records as a full read from there, and nothing of the torn tail."""
    monkeypatch.setattr("revlens.ingest.log.READ_BYTES", 7)
    records, positions = _many_segments(tmp_path)
    assert len(list(tmp_path.glob("*.seg"))) > 4
    entries = list(read(tmp_path))
    assert [e.record for e in entries] == records
    ends = [0] + [e.end for e in entries]
    for start in ends:
        assert [e.position for e in read(tmp_path, start)] == [p for p in positions if p >= start]
    # A position inside a record (not a boundary) still gives the records that start after it.
    inside = positions[5] + 3
    assert [e.position for e in read(tmp_path, inside)] == positions[6:]


def test_segments_before_the_start_are_not_read(tmp_path: Path) -> None:
    """Catching up after a backlog reads from the last loaded position on, not the whole log (a
    ten-minute soak leaves 8 GB of log behind it)."""
    _, positions = _many_segments(tmp_path)
    segments = sorted(tmp_path.glob("*.seg"))
    second = int(segments[1].stem)
    segments[0].unlink()
    segments[0].mkdir()  # opening it now fails, so reading it would show
    with pytest.raises(IsADirectoryError):
        list(read(tmp_path))
    assert [e.position for e in read(tmp_path, second)] == [p for p in positions if p >= second]


def test_corrupt_record_in_a_chunked_read_ends_its_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("revlens.ingest.log.READ_BYTES", 11)
    _, positions = _many_segments(tmp_path)
    first = sorted(tmp_path.glob("*.seg"))[0]
    in_first = [p for p in positions if p < first.stat().st_size]
    data = bytearray(first.read_bytes())
    data[in_first[1] + HEADER.size + 2] ^= 0xFF  # a flipped bit in the second record's payload
    first.write_bytes(bytes(data))
    assert [e.position for e in read(tmp_path)] == [in_first[0]] + [p for p in positions if p >= len(data)]
