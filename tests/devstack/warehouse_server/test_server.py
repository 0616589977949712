"""The local warehouse server speaks ClickHouse's HTTP interface well enough for clickhouse-connect.

Each client-level test runs twice: against the server (a subprocess started once per session,
``warehouse_url``) and against chDB in-process (``chdb://``, the session's one chDB path), so
the two ways of reaching the warehouse are held to the same behaviour. Tests of the wire itself
(compression, headers, raw inserts, errors, signals) speak HTTP directly.
"""

from __future__ import annotations

import datetime as dt
import gzip
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
import httpx
import lz4.frame
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import zstandard
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from devstack.warehouse_server import codecs, sql
from eventpulse.config.warehouse import WarehouseSettings
from tests.support.services import free_port, session_auth, start_warehouse, stop

Connect = Callable[..., Client]


@pytest.fixture(params=["http", "chdb"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def connect(backend: str, warehouse_url: str, chdb_path: Path) -> Iterator[Connect]:
    """``connect(**kwargs)``: a client of a fresh database, over HTTP or in-process."""
    database = f"srv_{uuid.uuid4().hex[:10]}"
    clients: list[Client] = []

    def make(database: str | None = database, **kwargs: object) -> Client:
        if backend == "http":
            url = urlsplit(warehouse_url)
            user, password = session_auth("admin")
            client = clickhouse_connect.get_client(
                host=url.hostname, port=url.port, database=database, username=user, password=password, **kwargs
            )
        else:
            kwargs.pop("compress", None)
            client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}", database=database, **kwargs)
        clients.append(client)
        return client

    admin = make(database=None)
    admin.command(f"CREATE DATABASE {database}")
    yield make
    admin.command(f"DROP DATABASE IF EXISTS {database}")
    for client in clients:
        client.close()


@pytest.fixture
def client(connect: Connect) -> Client:
    return connect()


@pytest.fixture
def http(warehouse_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=warehouse_url, timeout=30, auth=session_auth("admin")) as http_client:
        yield http_client


@pytest.fixture
def http_db(http: httpx.Client) -> Iterator[str]:
    """A fresh database on the server, for raw HTTP tests."""
    database = f"raw_{uuid.uuid4().hex[:10]}"
    _ok(http.post("/", content=f"CREATE DATABASE {database}"))
    yield database
    http.post("/", content=f"DROP DATABASE IF EXISTS {database}")


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, response.text
    return response


def _wait_until_running(http: httpx.Client, marker: str) -> None:
    """Wait until a query containing ``marker`` shows in system.processes."""
    probe = f"SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' AND query NOT LIKE '%processes%'"
    deadline = time.monotonic() + 10
    while _ok(http.post("/", content=probe)).text != "1\n":
        assert time.monotonic() < deadline, f"{marker} never started"
        time.sleep(0.02)


# --- clickhouse-connect, over HTTP and in-process -------------------------------------------------

_COLUMNS = (
    "id UInt64, name String, at DateTime, day Date, score Float64, tags Array(String),"
    " kind LowCardinality(String), maybe Nullable(Int32)"
)
_NAMES = ["id", "name", "at", "day", "score", "tags", "kind", "maybe"]


@pytest.fixture(scope="module")
def rows() -> list[tuple]:
    """200,000 rows of several types (built once: building them costs more than sending them)."""
    start, first_day = dt.datetime(2026, 11, 1), dt.date(2026, 1, 1)
    seconds = [dt.timedelta(seconds=i) for i in range(200_000)]
    days = [first_day + dt.timedelta(days=i) for i in range(365)]
    return [
        (
            i,
            f'name {i} it\'s \\ "q"\n\tünï ✓',
            start + seconds[i],
            days[i % 365],
            i / 7,
            [f"t{i % 3}", "x'y"] if i % 4 else [],
            ("web", "ios", "android")[i % 3],
            None if i % 5 == 0 else -i,
        )
        for i in range(200_000)
    ]


@pytest.mark.parametrize(
    ("backend", "compress"),
    [("http", True), ("http", False), ("http", "zstd"), ("http", "gzip"), ("chdb", False)],
    indirect=["backend"],
)
def test_insert_and_read_back_200k_rows(connect: Connect, compress: bool | str, rows: list[tuple]) -> None:
    # compress=True is clickhouse-connect's default: lz4, one frame per block
    client = connect(compress=compress)
    client.command(f"CREATE TABLE t ({_COLUMNS}) ENGINE = MergeTree ORDER BY id")

    summary = client.insert("t", rows, column_names=_NAMES)

    assert summary.written_rows == 200_000
    assert client.query("SELECT * FROM t ORDER BY id").result_rows == rows


def test_command_returns_values_and_summaries(backend: str, client: Client) -> None:
    assert client.command("SELECT 41 + 1") == 42
    assert client.command("SELECT 'a', 'b'") == ["a", "b"]
    assert client.command("SELECT 1 WHERE 0") == ""  # a result set, empty
    client.command("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a")
    summary = client.command("INSERT INTO t SELECT number FROM numbers(5)")
    if backend == "http":  # clickhouse-connect's chdb:// backend reports no written rows
        assert summary.written_rows == 5
    assert client.command("SELECT sum(a) FROM t") == 10


def test_arrow_dataframe_and_numpy_results(client: Client) -> None:
    client.command("CREATE TABLE t (id UInt32, name String, score Float64) ENGINE = MergeTree ORDER BY id")
    client.insert("t", [(i, f"n{i}", i / 2) for i in range(10_000)], column_names=["id", "name", "score"])

    table = client.query_arrow("SELECT * FROM t ORDER BY id")
    assert table.num_rows == 10_000 and table.column("name")[9_999].as_py() == "n9999"
    frame = client.query_df("SELECT * FROM t ORDER BY id")
    assert frame["score"].sum() == sum(i / 2 for i in range(10_000))
    array = client.query_np("SELECT id, score FROM t ORDER BY id")
    assert len(array) == 10_000 and np.isclose(array["score"][-1], 4999.5)
    with client.query_row_block_stream("SELECT * FROM t") as stream:
        assert sum(len(block) for block in stream) == 10_000

    client.insert_arrow("t", pa.table({"id": [10_000, 10_001], "name": ["a", "b"], "score": [1.0, 2.0]}))
    client.insert_df("t", pd.DataFrame({"id": [10_002], "name": ["c"], "score": [3.0]}))
    assert client.query("SELECT name FROM t WHERE id >= 10000 ORDER BY id").result_columns == [["a", "b", "c"]]


def test_server_side_parameters_round_trip(client: Client) -> None:
    text = "it's a \\ backslash, a \"quote\", a\nnewline, a\ttab, ünïcödé ✓ and 'single' quotes"
    row = client.query(
        "SELECT {s:String}, {d:Date}, {t:DateTime}, {a:Array(String)}, {n:Nullable(Int64)}, {i:Int64},"
        " {m:Decimal(18, 4)}, {u:UUID}",
        parameters={
            "s": text,
            "d": dt.date(2026, 11, 2),
            "t": dt.datetime(2026, 11, 2, 3, 4, 5),
            "a": ["x'y", "z\\w", "new\nline"],
            "n": None,
            "i": -7,
            "m": Decimal("12.3456"),
            "u": uuid.UUID(int=7919),
        },
    ).result_rows[0]
    assert row == (
        text,
        dt.date(2026, 11, 2),
        dt.datetime(2026, 11, 2, 3, 4, 5),
        ["x'y", "z\\w", "new\nline"],
        None,
        -7,
        Decimal("12.3456"),
        uuid.UUID(int=7919),
    )


def test_long_parameters_travel_as_a_form(client: Client) -> None:
    # Over 4 KiB of parameters, clickhouse-connect sends a multipart form instead of URL parameters.
    ids = [f"id-{i:06d}-'quoted'" for i in range(2_000)]
    found = client.query("SELECT length({ids:Array(String)}), {ids:Array(String)}[2000]", parameters={"ids": ids})
    assert found.result_rows == [(2_000, ids[-1])]


def test_settings_apply_to_one_query_only(connect: Connect) -> None:
    client, other = connect(), connect()
    default = client.command("SELECT getSetting('max_threads')")
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
    assert client.command("SELECT getSetting('max_threads')") == default
    assert other.command("SELECT getSetting('max_threads')") == default

    tuned = connect(settings={"max_block_size": 1234})
    assert tuned.command("SELECT getSetting('max_block_size')") == 1234
    assert other.command("SELECT getSetting('max_block_size')") != 1234


def test_database_selection(connect: Connect, backend: str) -> None:
    client = connect()
    database = client.command("SELECT currentDatabase()")
    assert database.startswith("srv_")
    client.command("CREATE TABLE here (a UInt8) ENGINE = Memory")
    client.command("INSERT INTO here VALUES (7)")
    assert client.command("SELECT a FROM here") == 7
    assert connect(database="system").command("SELECT currentDatabase()") == "system"
    # A client that names no database lands in the platform's on the warehouse server (its --default-database,
    # by default EVENTPULSE_WAREHOUSE_DATABASE), as with ClickHouse's default_database; bare chDB stays in default.
    landing = WarehouseSettings().database if backend == "http" else "default"
    assert connect(database=None).command("SELECT currentDatabase()") == landing
    assert connect(database="default").command("SELECT currentDatabase()") == "default"
    assert client.command(f"SELECT count() FROM {database}.here") == 1


def test_session_state_persists_for_one_client(connect: Connect) -> None:
    client, other = connect(), connect()
    client.command("SET max_block_size = 4321")
    client.command("CREATE TEMPORARY TABLE scratch (a UInt8)")
    client.command("INSERT INTO scratch VALUES (1), (2)")
    assert client.command("SELECT getSetting('max_block_size')") == 4321
    assert client.command("SELECT sum(a) FROM scratch") == 3
    # a per-query setting wins for that query only, then the session's value is back
    assert client.command("SELECT getSetting('max_block_size')", settings={"max_block_size": 99}) == 99
    assert client.command("SELECT getSetting('max_block_size')") == 4321
    assert other.command("SELECT getSetting('max_block_size')") != 4321
    with pytest.raises(DatabaseError):
        other.command("SELECT * FROM scratch")


def test_errors_carry_clickhouse_code_and_message(client: Client) -> None:
    with pytest.raises(DatabaseError) as syntax:
        client.query("SELEC 1")
    assert syntax.value.code == 62 and "Syntax error" in str(syntax.value)
    with pytest.raises(DatabaseError) as missing:
        client.query("SELECT * FROM no_such_table")
    assert missing.value.code == 60 and "no_such_table" in str(missing.value)
    assert missing.value.name == "UNKNOWN_TABLE"
    with pytest.raises(DatabaseError) as setting:
        client.query("SELECT 1", settings={"no_such_setting_xyz": 1})
    assert setting.value.code == 115
    client.command("CREATE TABLE t (a UInt32) ENGINE = MergeTree ORDER BY a")
    with pytest.raises(DatabaseError) as bad_data:
        client.raw_insert("t", ["a"], "1\nnot a number\n", fmt="CSV")
    assert bad_data.value.code == 117 and bad_data.value.name == "INCORRECT_DATA"
    assert client.command("SELECT count() FROM t") == 0
    assert client.command("SELECT 1") == 1  # the client (and its session) still works


def test_error_after_streaming_started_is_reported(client: Client) -> None:
    with (
        pytest.raises(DatabaseError, match="throwIf"),
        client.query_row_block_stream(
            "SELECT number, throwIf(number = 1500000) FROM numbers(3000000)", settings={"max_block_size": 65536}
        ) as stream,
    ):
        for _ in stream:
            pass
    assert client.command("SELECT 2") == 2


def test_concurrent_clients_insert_and_query_correctly(connect: Connect) -> None:
    connect().command("CREATE TABLE t (worker UInt8, n UInt32, s String) ENGINE = MergeTree ORDER BY (worker, n)")
    per_worker = 20_000

    def work(worker: int) -> tuple[int, int, int]:
        client = connect()
        for part in range(4):
            rows = [(worker, n, f"w{worker}-{n}") for n in range(part * per_worker // 4, (part + 1) * per_worker // 4)]
            client.insert("t", rows, column_names=["worker", "n", "s"])
            assert client.command("SELECT {w:UInt8} * 1000 + {p:UInt8}", parameters={"w": worker, "p": part}) == (
                worker * 1000 + part
            )
        count, total = client.query(
            "SELECT count(), sum(n) FROM t WHERE worker = {w:UInt8}", parameters={"w": worker}
        ).result_rows[0]
        return worker, count, total

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [(w, per_worker, sum(range(per_worker))) for w in range(8)]
    assert connect().command("SELECT uniqExact(s) FROM t") == 8 * per_worker


# --- the wire ---------------------------------------------------------------------------------------


def test_ping_and_root(http: httpx.Client) -> None:
    assert _ok(http.get("/ping")).text == "Ok.\n"
    assert _ok(http.get("/")).text == "Ok.\n"
    assert http.head("/ping").status_code == 200


def test_a_long_query_does_not_block_ping_or_other_queries(http: httpx.Client, warehouse_url: str) -> None:
    slow_done = threading.Event()

    def slow() -> None:
        with httpx.Client(base_url=warehouse_url, timeout=30, auth=session_auth("admin")) as other:
            _ok(other.post("/", content="SELECT sleepEachRow(0.5) FROM numbers(4) SETTINGS max_block_size = 1"))
        slow_done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    _wait_until_running(http, "sleepEachRow(0.5)")
    started = time.perf_counter()
    assert _ok(http.get("/ping")).text == "Ok.\n"
    assert _ok(http.post("/", content="SELECT 1")).text == "1\n"
    assert time.perf_counter() - started < 1.0 and not slow_done.is_set()
    thread.join()
    assert slow_done.is_set()


def test_a_client_leaving_mid_stream_stops_its_query(http: httpx.Client, warehouse_url: str) -> None:
    endless = "SELECT number, repeat('x', 100) FROM numbers(10000000000) FORMAT Native"
    for _ in range(3):
        with httpx.stream(
            "POST", f"{warehouse_url}/", content=endless, timeout=30, auth=session_auth("admin")
        ) as response:
            assert len(next(response.iter_raw())) > 0
    deadline = time.monotonic() + 10
    while _ok(http.post("/", content="SELECT count() FROM system.processes")).text != "1\n":
        assert time.monotonic() < deadline, "a streamed query kept running after its client left"
        time.sleep(0.1)


def test_query_in_url_and_body_and_headers(http: httpx.Client) -> None:
    response = _ok(http.post("/", params={"query": "SELECT 1 AS x,"}, content=" 2 AS y FORMAT JSONEachRow"))
    assert response.text == '{"x":1,"y":2}\n'
    assert response.headers["x-clickhouse-format"] == "JSONEachRow"
    assert response.headers["x-clickhouse-timezone"]
    assert "x-clickhouse-server-display-name" in response.headers
    given = _ok(http.post("/", params={"query_id": "my-query-1"}, content="SELECT 1"))
    assert given.headers["x-clickhouse-query-id"] == "my-query-1"
    assert _ok(http.get("/", params={"query": "SELECT 2", "default_format": "JSONCompact"})).json()["data"] == [[2]]
    assert _ok(http.get("/", params={"query": "SELECT {v:String}", "param_v": "a\\tb"})).text == "a\\tb\n"


def test_get_requests_are_read_only(http: httpx.Client, http_db: str) -> None:
    response = http.get("/", params={"query": f"CREATE TABLE {http_db}.t (a UInt8) ENGINE = Memory"})
    assert response.status_code == 500 and response.headers["x-clickhouse-exception-code"] == "164"
    readonly = {"readonly": "1", "max_threads": "2"}  # readonly=1 first: other settings still apply
    assert _ok(http.post("/", params=readonly, content="SELECT getSetting('max_threads')")).text == "2\n"
    refused = http.post("/", params=readonly, content=f"CREATE TABLE {http_db}.t (a UInt8) ENGINE = Memory")
    assert refused.headers["x-clickhouse-exception-code"] == "164"
    _ok(http.post("/", content=f"CREATE TABLE {http_db}.t (a UInt8) ENGINE = Memory"))  # nothing left read-only


def test_inserts_with_inline_data(http: httpx.Client, http_db: str) -> None:
    _ok(http.post("/", content=f"CREATE TABLE {http_db}.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a"))
    # query in the URL, data in the body
    csv = _ok(http.post("/", params={"query": f"INSERT INTO {http_db}.t FORMAT CSV"}, content='1,"one"\n2,two\n'))
    assert '"written_rows":"2"' in csv.headers["x-clickhouse-summary"]
    assert "x-clickhouse-format" not in csv.headers
    # statement and data in the body, data streamed in many small chunks
    lines = b"".join(b'{"a": %d, "s": "j%d"}\n' % (i, i) for i in range(3, 20_003))
    body = b"INSERT INTO t FORMAT JSONEachRow\n" + lines

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 7_001):
            yield body[i : i + 7_001]

    _ok(http.post("/", params={"database": http_db}, content=chunks()))
    _ok(http.post("/", params={"database": http_db}, content=b"INSERT INTO t VALUES (20003, 'it''s'), (20004, 'x')"))
    result = _ok(
        http.post("/", params={"database": http_db}, content="SELECT a, s FROM t WHERE a > 20002 FORMAT JSONEachRow")
    )
    assert result.text == '{"a":20003,"s":"it\'s"}\n{"a":20004,"s":"x"}\n'
    assert _ok(http.post("/", content=f"SELECT count() FROM {http_db}.t")).text == "20004\n"


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
def test_compressed_insert_bodies_of_several_frames(http: httpx.Client, http_db: str, encoding: str) -> None:
    _ok(http.post("/", content=f"CREATE TABLE {http_db}.t (a UInt32) ENGINE = MergeTree ORDER BY a"))
    blocks = [b"".join(b"%d\n" % i for i in range(start, start + 10_000)) for start in range(0, 50_000, 10_000)]
    if encoding == "lz4":
        payload = b"".join(lz4.frame.compress(block) for block in blocks)  # one frame per block
    elif encoding == "zstd":
        payload = b"".join(zstandard.compress(block) for block in blocks)
    elif encoding == "gzip":
        payload = b"".join(gzip.compress(block) for block in blocks)  # several gzip members
    else:
        payload = zlib.compress(b"".join(blocks))
    response = http.post(
        "/",
        params={"query": f"INSERT INTO {http_db}.t FORMAT TSV"},
        content=iter([payload[i : i + 4096] for i in range(0, len(payload), 4096)]),
        headers={"Content-Encoding": encoding},
    )
    _ok(response)
    assert (
        _ok(http.post("/", content=f"SELECT count(), sum(a) FROM {http_db}.t")).text == f"50000\t{sum(range(50_000))}\n"
    )


def test_corrupt_or_unknown_body_encoding_is_an_error(http: httpx.Client, http_db: str) -> None:
    _ok(http.post("/", content=f"CREATE TABLE {http_db}.t (a UInt32) ENGINE = MergeTree ORDER BY a"))
    query = {"query": f"INSERT INTO {http_db}.t FORMAT TSV"}
    corrupt = http.post("/", params=query, content=b"\x04\x22\x4d\x18garbage", headers={"Content-Encoding": "lz4"})
    assert corrupt.status_code == 500 and corrupt.headers["x-clickhouse-exception-code"] == "271"
    big = iter([b"1\n" * 500_000] * 20)  # 20 MB, chunked: the server reads it all before answering
    unknown = http.post("/", params=query, content=big, headers={"Content-Encoding": "snappy2"})
    assert unknown.headers["x-clickhouse-exception-code"] == "89"
    assert _ok(http.post("/", content=f"SELECT count() FROM {http_db}.t")).text == "0\n"


@pytest.mark.parametrize("coding", ["lz4", "zstd", "gzip", "deflate"])
@pytest.mark.parametrize("fmt", ["Native", "Parquet"])  # streamed and complete responses
def test_compressed_responses(http: httpx.Client, coding: str, fmt: str) -> None:
    sql_text = f"SELECT number, toString(number) FROM numbers(300000) FORMAT {fmt}"
    plain = _ok(http.post("/", content=sql_text)).content
    response = http.post(
        "/", params={"enable_http_compression": "1"}, content=sql_text, headers={"Accept-Encoding": coding}
    )
    _ok(response)
    assert response.headers["content-encoding"] == coding
    # httpx decodes zstd, gzip and deflate itself; lz4 is ClickHouse's own
    raw = lz4.frame.decompress(response.content) if coding == "lz4" else response.content
    if fmt == "Native":
        assert raw == plain
    else:
        assert len(raw) == len(plain)  # Parquet carries timings in its metadata: compare sizes
    # without enable_http_compression the server does not compress, as ClickHouse
    assert "content-encoding" not in http.post("/", content="SELECT 1", headers={"Accept-Encoding": coding}).headers


def test_error_responses(http: httpx.Client) -> None:
    syntax = http.post("/", content="SELEC 1")
    assert syntax.status_code == 400
    assert syntax.headers["x-clickhouse-exception-code"] == "62"
    assert syntax.text.startswith("Code: 62. DB::Exception: Syntax error")
    missing = http.post("/", content="SELECT * FROM default.no_such_table")
    assert missing.status_code == 404 and missing.headers["x-clickhouse-exception-code"] == "60"
    assert "(UNKNOWN_TABLE)" in missing.text
    assert http.post("/", content="").headers["x-clickhouse-exception-code"] == "62"
    native = http.post("/", params={"decompress": "1"}, content="SELECT 1")
    assert native.headers["x-clickhouse-exception-code"] == "48"


def test_sessions_are_exclusive(http: httpx.Client, warehouse_url: str) -> None:
    session = {"session_id": f"s-{uuid.uuid4()}"}
    _ok(http.post("/", params=session, content="SET max_threads = 1"))
    assert _ok(http.post("/", params=session, content="SELECT getSetting('max_threads')")).text == "1\n"
    missing = http.post("/", params={"session_id": "no-such", "session_check": "1"}, content="SELECT 1")
    assert missing.headers["x-clickhouse-exception-code"] == "372"

    def busy() -> None:
        with httpx.Client(base_url=warehouse_url, timeout=30, auth=session_auth("admin")) as other:
            _ok(other.post("/", params=session, content="SELECT sleep(2.5)"))

    thread = threading.Thread(target=busy)
    thread.start()
    _wait_until_running(http, "sleep(2.5)")
    locked = http.post("/", params=session, content="SELECT 1")
    thread.join()
    assert locked.headers["x-clickhouse-exception-code"] == "373"


def test_port_in_use_and_clean_shutdown(warehouse_url: str, tmp_path: Path) -> None:
    taken = urlsplit(warehouse_url).port
    argv = [sys.executable, "-m", "devstack.warehouse_server", "--port", str(taken), "--path", str(tmp_path / "a")]
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0 and "already in use" in second.stderr

    port, log = free_port(), tmp_path / "server.log"
    proc = start_warehouse(tmp_path / "wh", port, log)
    try:
        _ok(
            httpx.post(
                f"http://127.0.0.1:{port}/",
                auth=session_auth("admin"),
                content="CREATE TABLE default.kept (a UInt8) ENGINE = MergeTree ORDER BY a",
            )
        )
        _ok(
            httpx.post(
                f"http://127.0.0.1:{port}/",
                auth=session_auth("admin"),
                content="INSERT INTO default.kept VALUES (1), (2)",
            )
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop(proc)
    assert "warehouse serving" in log.read_text() and "warehouse stopped" in log.read_text()
    # chDB was closed cleanly: a new server opens the same path and finds the data
    proc = start_warehouse(tmp_path / "wh", port, log)
    try:
        assert (
            _ok(
                httpx.post(
                    f"http://127.0.0.1:{port}/", auth=session_auth("admin"), content="SELECT sum(a) FROM default.kept"
                )
            ).text
            == "3\n"
        )
    finally:
        stop(proc)


# --- pure units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "head", "fmt", "data"),
    [
        (b"INSERT INTO t (a, b) FORMAT Native\n\t\n\x00", b"INSERT INTO t (a, b)", "Native", b"\t\n\x00"),
        (b"insert into t format csv   \n\n1,2", b"insert into t", "CSV", b"\n1,2"),
        (b"INSERT INTO t FORMAT CSV 1,2\n", b"INSERT INTO t", "CSV", b"1,2\n"),
        (b"INSERT INTO t VALUES (1, 'FORMAT x')", b"INSERT INTO t", "Values", b" (1, 'FORMAT x')"),
        (b"INSERT INTO f('a FORMAT CSV', 'x') FORMAT TSV\n1", b"INSERT INTO f('a FORMAT CSV', 'x')", "TSV", b"1"),
        (b"/* FORMAT CSV */ INSERT INTO t SETTINGS x = 1 FORMAT TSV\n1", None, "TSV", b"1"),
    ],
)
def test_scan_finds_inline_insert_data(text: bytes, head: bytes | None, fmt: str, data: bytes) -> None:
    formats = {"native": "Native", "csv": "CSV", "tsv": "TSV", "values": "Values"}
    statement = sql.scan(text, True, formats)
    assert statement.insert_format == fmt
    assert text[statement.data_offset :] == data
    if head is not None:
        assert statement.insert_head == head


def test_scan_needs_more_input_and_classifies() -> None:
    formats = {"native": "Native", "jsoneachrow": "JSONEachRow"}
    for partial in (b"INSERT INTO t FORMAT Nat", b"INSERT INTO t FORMAT Native", b"INSERT INTO t ('x"):
        with pytest.raises(sql.Incomplete):
            sql.scan(partial, False, formats)
    assert not sql.scan(b"INSERT INTO t SELECT 1 FORMAT Native", True, formats).has_inline_data
    assert sql.scan(b"select 'FORMAT x' format jsoneachrow", True, formats).output_format == "JSONEachRow"
    assert sql.scan(b"SELECT format FROM t", True, formats).output_format is None
    assert sql.scan(b"(SELECT 1)", True).returns_rows
    assert sql.scan(b"CREATE TEMPORARY TABLE x (a Int8)", True).changes_session
    assert not sql.scan(b"CREATE TABLE x (a Int8)", True).returns_rows


def test_lz4_decoder_reads_every_frame_and_rejects_a_cut_one() -> None:
    frames = lz4.frame.compress(b"a" * 100_000) + lz4.frame.compress(b"b" * 10)
    decoder = codecs.decoder_for("lz4")
    out = b"".join(decoder.decode(frames[i : i + 17]) for i in range(0, len(frames), 17))
    decoder.finish()
    assert out == b"a" * 100_000 + b"b" * 10
    cut = codecs.decoder_for("lz4")
    cut.decode(frames[:-5])
    with pytest.raises(Exception, match="ends inside a frame"):
        cut.finish()
    assert codecs.negotiate("gzip;q=0, zstd, lz4") == "zstd"
    assert codecs.negotiate("br2, identity") is None
