"""A views file is read only if it is what was written for the session asked for.

Real files, damaged as a disk or an operator would damage them: a bit flipped anywhere,
another session's file copied over this one's, a file written before views carried
digests. Each is refused by name (``ViewsDamaged``) or, where the flip touched nothing
the views are made of, reads back exactly as written; never as other values.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil

import pyarrow.parquet as pq
import pytest

from kalshi_pipeline.market.views import (
    RawCopy,
    ViewsChanged,
    ViewsDamaged,
    build_market_views,
    read_views,
    view_descriptions,
    views_footer,
    write_view_batches,
    write_views,
)
from kalshi_pipeline.market.views.integrity import CHECK_KEY, check_entry
from kalshi_pipeline.market.views.parquet import views_to_table
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session


def session_views(session_id: int, markets: int = 6):
    return build_market_views(simulate_session(session_id, 1, SimulatorConfig(markets=markets)))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Session 3's views in a file, and the file's bytes."""
    views = session_views(3)
    path = write_views(views, tmp_path_factory.mktemp("views") / "session-3.parquet", 3)
    return views, path.read_bytes()


def flipped(data: bytes, offset: int, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 1 << bit
    return bytes(damaged)


def test_a_bit_flipped_anywhere_is_refused_or_changes_nothing(written, tmp_path):
    """Offsets spread over the whole file (data pages, page headers, the footer's
    structures, its descriptions and digests), plus every byte of the last 200."""
    views, data = written
    rng = random.Random(26)
    offsets = sorted({*rng.sample(range(len(data)), 150), *range(len(data) - 200, len(data))})
    path = tmp_path / "session-3.parquet"
    refused = {"read_views": 0, "view_descriptions": 0}
    for offset in offsets:
        path.write_bytes(flipped(data, offset, rng.randrange(8)))
        try:
            assert read_views(path, 3) == views, f"byte {offset}: other values read silently"
        except ViewsDamaged as exc:
            assert str(path) in str(exc)
            refused["read_views"] += 1
        try:
            described = view_descriptions(path, 3)
            assert described == [v.describe() for v in views], f"byte {offset}: other statistics"
        except ViewsDamaged:
            refused["view_descriptions"] += 1
    # Most flips land in what the views are made of, and are caught.
    assert refused["read_views"] > len(offsets) // 2
    assert refused["view_descriptions"] > 100  # those in the footer's descriptions and digests


def test_a_flip_in_the_step_data_is_named_with_the_partition_to_rebuild(written, tmp_path):
    views, data = written
    path = tmp_path / "session-3.parquet"
    path.write_bytes(flipped(data, len(data) // 3, 2))

    with pytest.raises(ViewsDamaged) as refused:
        read_views(path, 3)

    message = str(refused.value)
    assert message.startswith(f"views file {path} is not used: ")
    assert message.endswith(
        "(build session 3's views again from its raw copy: materialise the market_views "
        "partition 3 again)"
    )
    assert "\n" not in message


def test_another_sessions_file_copied_over_this_ones_is_refused_naming_both(tmp_path):
    first = write_views(session_views(1), tmp_path / "session-1.parquet", 1)
    second = write_views(session_views(2), tmp_path / "session-2.parquet", 2)
    shutil.copyfile(first, second)

    for read in (read_views, view_descriptions):
        with pytest.raises(ViewsDamaged, match="it holds the views of session 1, not of session 2"):
            read(second, 2)
    assert read_views(first, 1) == session_views(1)  # the original is fine


def test_a_file_written_before_views_carried_digests_is_refused_with_what_to_do(tmp_path):
    """Such a file (the descriptions in its footer, no digest) is treated as damaged:
    views are derived data, and building them again is the way to a verified file."""
    views = session_views(4)
    table = views_to_table(views).replace_schema_metadata(
        {b"kalshi_pipeline.views": json.dumps([v.describe() for v in views]).encode()}
    )
    path = tmp_path / "session-4.parquet"
    pq.write_table(table, path)

    for read in (read_views, view_descriptions):
        with pytest.raises(ViewsDamaged, match="it has no digest") as refused:
            read(path, 4)
        assert "materialise the market_views partition 4 again" in str(refused.value)


def test_an_edited_statistic_is_refused_by_the_footer_only_read(written, tmp_path):
    """A description rewritten by hand (a quality score raised to pass the filters)."""
    views, data = written
    path = tmp_path / "session-3.parquet"
    path.write_bytes(data)
    table = pq.read_table(path)
    metadata = dict(pq.ParquetFile(path).metadata.metadata)
    described = json.loads(metadata[b"kalshi_pipeline.views"])
    described[0]["data_quality_score"] = 1.0 - described[0]["data_quality_score"] / 2
    metadata[b"kalshi_pipeline.views"] = json.dumps(described).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)

    with pytest.raises(ViewsDamaged, match="does not match its digest"):
        view_descriptions(path, 3)


def test_a_footer_describing_another_sessions_view_is_refused_even_with_its_digests(
    written, tmp_path
):
    """A footer rewritten by hand, digests recomputed: one view described as of session
    4 in session 3's file. The file's session and its views' must agree, so a reader
    that names the session never gets a view of another one."""
    views, data = written
    path = tmp_path / "session-3.parquet"
    path.write_bytes(data)
    table = pq.read_table(path)
    metadata = dict(pq.ParquetFile(path).metadata.metadata)
    described = json.loads(metadata[b"kalshi_pipeline.views"])
    described[0]["session_id"] = 4
    stored = json.dumps(described).encode()
    data_sha256 = json.loads(metadata[CHECK_KEY])["data_sha256"]
    metadata |= {b"kalshi_pipeline.views": stored, CHECK_KEY: check_entry(3, data_sha256, stored)}
    pq.write_table(table.replace_schema_metadata(metadata), path)

    for read in (read_views, view_descriptions):
        with pytest.raises(ViewsDamaged, match=r"it describes views of sessions \[4\] too"):
            read(path, 3)


def test_a_file_replaced_since_its_version_was_pinned_is_refused_naming_both(tmp_path):
    """A reader pins the version it first read; a rebuild with other views changes it and
    is refused before its data is read, while a rebuild with the same views keeps it."""
    path = tmp_path / "session-3.parquet"
    write_views(session_views(3), path, 3)
    pinned = views_footer(path, 3).version
    assert views_footer(path, 3).descriptions == view_descriptions(path, 3)

    write_views(session_views(3), path, 3)  # built again, the same views
    assert views_footer(path, 3).version == pinned
    assert read_views(path, 3, pinned) == session_views(3)

    other = build_market_views(simulate_session(3, 2, SimulatorConfig(markets=6)))
    write_views(other, path, 3)  # ingested again, other rows
    found = views_footer(path, 3).version
    with pytest.raises(ViewsChanged) as refused:
        read_views(path, 3, pinned)
    assert str(refused.value) == (
        f"views file {path} changed since it was first read: session 3's views are now "
        f"version {found[:12]}, not {pinned[:12]}"
    )
    assert read_views(path, 3, found) == other


def test_a_file_holds_one_sessions_views(tmp_path):
    path = tmp_path / "views.parquet"
    with pytest.raises(ValueError, match="is not of session 1"):
        write_view_batches([session_views(1, 2), session_views(2, 2)], path)
    with pytest.raises(ValueError, match="is not of session 5"):
        write_views(session_views(1, 2), path, 5)
    assert not path.exists()


def test_a_missing_file_is_not_damage(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_views(tmp_path / "session-9.parquet", 9)


def test_a_file_built_from_another_raw_copy_is_refused_before_its_data_is_read(tmp_path):
    """Session 3's views built from one raw copy (its digests.json's SHA-256 "a" * 64),
    read by a home whose raw copy is another ("b" * 64): refused by every reader, naming
    the file and both raw copies; read by that raw copy's home, or unchecked, as written.
    The recorded raw copy is covered by the footer's digest: edited alone, it is damage."""
    path = tmp_path / "session-3.parquet"
    views = session_views(3)
    write_views(views, path, 3, raw_sha256="a" * 64)
    for read in (read_views, view_descriptions, views_footer):
        with pytest.raises(ViewsDamaged) as refused:
            read(path, 3, built_from=RawCopy("b" * 64))
        assert str(refused.value) == (
            f"views file {path} is not used: it was built from another raw copy of session 3 "
            f"(raw digests {'a' * 12}, not {'b' * 12} as this home's raw copy): another "
            "home's or an earlier ingest's views (build session 3's views again from its raw "
            "copy: materialise the market_views partition 3 again)"
        )
    assert read_views(path, 3, built_from=RawCopy("a" * 64)) == views
    assert views_footer(path, 3).raw_sha256 == "a" * 64

    metadata = dict(pq.ParquetFile(path).metadata.metadata)
    check = json.loads(metadata[CHECK_KEY]) | {"raw_sha256": "b" * 64}
    table = pq.read_table(path)
    metadata[CHECK_KEY] = json.dumps(check).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.raises(ViewsDamaged, match="does not match its digest"):
        read_views(path, 3, built_from=RawCopy("b" * 64))


def test_a_file_that_does_not_record_its_raw_copy_is_refused(written, tmp_path):
    """Written by the previous build of this release (digests, but no raw copy): as
    untrusted as a file without digests, whoever reads it."""
    _, data = written
    path = tmp_path / "session-3.parquet"
    path.write_bytes(data)
    metadata = dict(pq.ParquetFile(path).metadata.metadata)
    check = json.loads(metadata[CHECK_KEY])
    head = json.dumps({"session_id": 3, "data_sha256": check["data_sha256"]}, sort_keys=True)
    described = metadata[b"kalshi_pipeline.views"]
    older = {
        "session_id": 3,
        "data_sha256": check["data_sha256"],
        "sha256": hashlib.sha256(head.encode() + b"\n" + described).hexdigest(),
    }
    metadata[CHECK_KEY] = json.dumps(older, sort_keys=True).encode()
    pq.write_table(pq.read_table(path).replace_schema_metadata(metadata), path)
    for read in (read_views, view_descriptions):
        with pytest.raises(ViewsDamaged, match="does not record the raw copy it was built from"):
            read(path, 3)


def test_a_raw_copy_without_digests_matches_only_views_that_recorded_none(tmp_path):
    """A home's raw copy that has no digests.json (stored before the raw store kept
    them, or lost it) is RawCopy(None): views built from a copy with digests are refused
    by it, views built from one without are read."""
    path = tmp_path / "session-3.parquet"
    views = session_views(3)
    write_views(views, path, 3, raw_sha256="a" * 64)
    with pytest.raises(ViewsDamaged, match=r"not none \(a raw copy without digests.json\)"):
        read_views(path, 3, built_from=RawCopy(None))
    write_views(views, path, 3)
    assert read_views(path, 3, built_from=RawCopy(None)) == views
    with pytest.raises(ViewsDamaged, match=r"raw digests none \(a raw copy without digests"):
        view_descriptions(path, 3, built_from=RawCopy("a" * 64))
