"""The ingestor's write-ahead spool: order, recovery from a torn tail, the bound, deletion."""

from __future__ import annotations

import os

import pytest

from rivermon.ingest.spool import HEADER, Spool, SpoolLocked, SpoolReader


def payloads(records) -> list[bytes]:
    return [r.payload for r in records]


def test_records_come_back_in_order_only_once_durable(tmp_path):
    sp = Spool(tmp_path, max_bytes=10 << 20)
    rd = SpoolReader(sp)
    sp.append(b"a 1", 1)
    assert rd.read(100) == []  # appended but not yet synced: not visible
    sp.sync()
    sp.append(b"b 2\nc 3", 2)
    sp.sync()
    recs = rd.read(100)
    assert payloads(recs) == [b"a 1", b"b 2\nc 3"]
    assert [r.lines for r in recs] == [1, 2]
    assert rd.read(100) == []
    sp.close()


def test_restart_replays_from_the_cursor(tmp_path):
    sp = Spool(tmp_path, max_bytes=10 << 20)
    for i in range(5):
        sp.append(f"p {i}".encode(), 1)
    sp.sync()
    rd = SpoolReader(sp)
    first = rd.read(2)
    sp.commit(first[-1].end)
    sp.close()
    sp2 = Spool(tmp_path, max_bytes=10 << 20)
    assert payloads(SpoolReader(sp2).read(100)) == [b"p 2", b"p 3", b"p 4"]
    sp2.close()


def test_a_torn_tail_is_cut_off_and_later_appends_are_readable(tmp_path):
    sp = Spool(tmp_path, max_bytes=10 << 20)
    sp.append(b"good", 1)
    sp.sync()
    sp.close()
    seg = sorted(tmp_path.glob("*.wal"))[-1]
    with open(seg, "ab") as f:  # what kill -9 in the middle of a write leaves
        f.write(b"RVS1\x00\x10\x00\x00garbage")
    sp2 = Spool(tmp_path, max_bytes=10 << 20)
    assert sp2.truncated_bytes > 0
    sp2.append(b"after", 1)
    sp2.sync()
    assert payloads(SpoolReader(sp2).read(100)) == [b"good", b"after"]
    sp2.close()


def test_a_corrupted_crc_is_detected(tmp_path):
    sp = Spool(tmp_path, max_bytes=10 << 20)
    sp.append(b"one", 1)
    sp.append(b"two", 1)
    sp.sync()
    sp.close()
    seg = sorted(tmp_path.glob("*.wal"))[-1]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    sp2 = Spool(tmp_path, max_bytes=10 << 20)
    assert payloads(SpoolReader(sp2).read(100)) == [b"one"]
    sp2.close()


def test_full_bound_and_segments_deleted_once_written(tmp_path):
    sp = Spool(tmp_path, max_bytes=256 * 1024, segment_bytes=64 * 1024)
    rd = SpoolReader(sp)
    chunk = b"x" * 10_000
    while not sp.full(len(chunk)):
        sp.append(chunk, 1)
        sp.sync()
    assert sp.unwritten_bytes() > 200 * 1024
    assert len(list(tmp_path.glob("*.wal"))) >= 3
    recs = rd.read(10_000)
    assert all(r.payload == chunk for r in recs)
    sp.commit(rd.position)
    assert not sp.full(len(chunk)) and sp.unwritten_bytes() == 0
    sp.append(chunk, 1)  # rotates: the reader took everything in the current segment
    sp.sync()
    sp.commit(SpoolReader(sp).position)
    assert len(list(tmp_path.glob("*.wal"))) <= 2
    assert sp.disk_bytes() <= 64 * 1024 + len(chunk) + HEADER.size
    sp.close()


def test_an_empty_spool_takes_a_group_bigger_than_its_bound(tmp_path):
    sp = Spool(tmp_path, max_bytes=1000)
    assert not sp.full(5000)
    sp.close()


def test_one_process_per_spool(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=1 << 20)
    sp.close()
    Spool(tmp_path, max_bytes=1 << 20).close()


def test_oldest_wall_time(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20)
    assert sp.oldest_wall_ms() is None
    sp.append(b"a", 1, wall_ms=1234)
    sp.append(b"b", 1, wall_ms=5678)
    sp.sync()
    assert sp.oldest_wall_ms() == 1234
    rd = SpoolReader(sp)
    sp.commit(rd.read(1)[0].end)
    assert sp.oldest_wall_ms() == 5678
    assert os.path.exists(tmp_path / "cursor")
    sp.close()


def test_corruption_in_an_older_segment_keeps_the_later_segments(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64 * 1024)
    chunk = b"y" * 30_000
    for _ in range(6):  # three segments of two records each
        sp.append(chunk, 1)
        sp.sync()
    sp.close()
    first = sorted(tmp_path.glob("*.wal"))[0]
    data = bytearray(first.read_bytes())
    data[-5] ^= 0xFF  # damage the second record of the first segment
    first.write_bytes(bytes(data))
    sp2 = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64 * 1024)
    assert sp2.lost_bytes > 0
    recs = SpoolReader(sp2).read(100)
    assert len(recs) == 5 and all(r.payload == chunk for r in recs)
    sp2.close()
