"""Reading import files: formats by name, chunks from any row on (what a resume reads), the column mapping."""

import gzip

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from eventpulse.imports.checkpoints import Checkpoint, CheckpointStore
from eventpulse.imports.files import Format, filesystem_of, format_of, list_files
from eventpulse.imports.reading import parse_mapping, read_chunks
from eventpulse.imports.rows import row_objects


def _file(path):
    filesystem, inner = filesystem_of(str(path))
    return list_files(filesystem, inner, str(path))[0]


def test_formats_by_name() -> None:
    assert format_of("a.ndjson.zst") == (Format.NDJSON, "zstd")
    assert format_of("a.CSV.gz") == (Format.CSV, "gzip")
    assert format_of("a.parquet") == (Format.PARQUET, None)
    assert format_of("a.parquet.gz") is None and format_of("notes.txt") is None


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".csv.gz", ".ndjson.gz"])
@pytest.mark.parametrize("skip", [0, 1, 7, 10, 23, 25])
def test_chunks_from_any_row_hold_exactly_the_rows_after_it(tmp_path, suffix, skip) -> None:
    table = pa.table({"n": list(range(25))})
    path = tmp_path / f"f{suffix}"
    if suffix == ".parquet":
        pq.write_table(table, path, row_group_size=6)
    elif suffix.startswith(".csv"):
        pacsv.write_csv(table, tmp_path / "plain.csv")
        raw = (tmp_path / "plain.csv").read_bytes()
        path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    else:
        path.write_bytes(gzip.compress(b"".join(b'{"n": %d}\n' % n for n in range(25))))
    chunks = list(read_chunks(_file(path), 4, skip))
    assert [c.first for c in chunks] == list(range(skip, 25, 4))
    assert sum(c.count for c in chunks) == 25 - skip
    if suffix.startswith(".ndjson"):
        values = [int(line[6:-1]) for c in chunks for line in c.lines or []]
    else:
        values = [n for c in chunks for n in c.table.column("n").to_pylist()]  # type: ignore[union-attr]
    assert values == list(range(skip, 25))


def test_the_mapping_renames_columns_into_fields() -> None:
    assert parse_mapping(["timestamp=ts", "data.user_id = uid"]) == {"ts": "timestamp", "uid": "data.user_id"}
    with pytest.raises(ValueError, match="FIELD=COLUMN"):
        parse_mapping(["timestamp"])


def test_a_row_is_the_object_a_client_would_send() -> None:
    data = pa.array([{"a": 1, "b": None}, None], pa.struct([("a", pa.int64()), ("b", pa.string())]))
    table = pa.table({"type": ["t", "t"], "data": data, "x": [None, 2.5], "data.y": ["y", None], "id": ["i", None]})
    assert row_objects(table) == [
        {"type": "t", "data": {"a": 1, "y": "y"}, "id": "i"},
        {"type": "t", "data": {"x": 2.5}},
    ]
    bad = row_objects(pa.table({"data": ['{"a": 1}', "{oops"]}))
    assert bad[0] == {"data": {"a": 1}} and bad[1].reason == "malformed_json"


def test_checkpoints_are_replaced_whole(tmp_path) -> None:
    store = CheckpointStore(tmp_path / "cp")
    assert store.load("f") is None
    store.save("f", Checkpoint("u", 10, 9, 1))
    store.save("f", Checkpoint("u", 20, 19, 1, complete=True))
    assert store.load("f") == Checkpoint("u", 20, 19, 1, complete=True)
    assert [p.name for p in store.directory.iterdir()] == ["f.json"]
