"""`eventpulse up`: what runs where, and the whole core stack end to end on free ports."""

import contextlib
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from devstack.ports import port_is_free
from devstack.process import group_members
from devstack.stack_services import StackOptions, stack_services
from devstack.supervisor import RestartPolicy
from eventpulse.access.credentials import read_users_file
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.stack import StackSettings
from eventpulse.settings import Settings
from tests.devstack.test_supervisor import _alive
from tests.support.services import free_port


def test_services_are_ordered_and_share_one_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    services = stack_services(settings, StackOptions(traffic=True))
    names = [s.name for s in services]
    assert names == [
        *("objectstore", "redis", "broker", "warehouse", "migrate", "flow", "signin"),
        *("gateway", "dagster", "dashboard", "traffic"),
    ]
    envs = {s.name: dict(s.env) for s in services}
    assert all(env == envs["broker"] for env in envs.values())
    assert envs["flow"]["EVENTPULSE_BROKER_BOOTSTRAP"] == f"127.0.0.1:{settings.broker.port}"
    assert envs["flow"]["EVENTPULSE_WAREHOUSE_URL"] == f"http://127.0.0.1:{settings.warehouse.port}"
    assert envs["dagster"]["DAGSTER_HOME"] == str(tmp_path.resolve() / "dagster")
    assert envs["gateway"]["EVENTPULSE_REDIS_URL"] == f"redis://127.0.0.1:{settings.redis.port}/0"
    users = envs["gateway"]["EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"]
    warehouse_argv = next(s.argv for s in services if s.name == "warehouse")
    assert list(warehouse_argv[-2:]) == ["--users-file", users]  # the server and its clients share one file
    by_name = {s.name: s for s in services}
    assert by_name["migrate"].oneshot and "warehouse" in by_name["migrate"].depends_on
    assert {"broker", "migrate"} <= set(by_name["flow"].depends_on)


def test_tls_components_are_reached_over_tls(tmp_path: Path) -> None:
    from eventpulse.config.gateway import GatewaySettings
    from eventpulse.config.warehouse import WarehouseSettings

    pem = {"tls_certfile": tmp_path / "c.pem", "tls_keyfile": tmp_path / "k.pem"}
    settings = Settings(data_dir=tmp_path, warehouse=WarehouseSettings(**pem), gateway=GatewaySettings(**pem))
    by_name = {s.name: s for s in stack_services(settings, StackOptions())}
    assert by_name["flow"].env["EVENTPULSE_WAREHOUSE_URL"] == f"https://127.0.0.1:{settings.warehouse.port}"
    assert by_name["warehouse"].url is None and by_name["warehouse"].port == settings.warehouse.port
    assert by_name["gateway"].url is None
    plain = {s.name: s for s in stack_services(Settings(data_dir=tmp_path), StackOptions())}
    assert plain["gateway"].url.startswith("http://")


def test_optional_services_can_be_left_out(tmp_path: Path) -> None:
    options = StackOptions(without=frozenset({"redis", "gateway", "dagster", "dashboard"}))
    services = stack_services(Settings(data_dir=tmp_path), options)
    assert [s.name for s in services] == ["objectstore", "broker", "warehouse", "migrate", "flow"]
    assert all(s.env["EVENTPULSE_REDIS_URL"] == "" for s in services)  # no Redis: state per process, said so


def test_the_durable_broker_keeps_its_log_under_the_data_dir_and_memory_storage_needs_no_store(
    tmp_path: Path,
) -> None:
    by_name = {s.name: s for s in stack_services(Settings(data_dir=tmp_path), StackOptions())}
    store, broker = by_name["objectstore"], by_name["broker"]
    assert str(tmp_path.resolve() / "broker") in store.argv and store.port == 9000
    assert broker.depends_on == ["objectstore"] and "s3" in broker.argv
    memory = Settings(data_dir=tmp_path, broker=BrokerSettings(storage="memory"))
    by_name = {s.name: s for s in stack_services(memory, StackOptions())}
    assert "objectstore" not in by_name and "memory" in by_name["broker"].argv


def test_redis_runs_on_its_settings_and_keeps_an_append_only_file(tmp_path: Path) -> None:
    from eventpulse.config.redis import RedisSettings

    settings = Settings(data_dir=tmp_path, redis=RedisSettings(port=6390))
    redis = next(s for s in stack_services(settings, StackOptions()) if s.name == "redis")
    assert redis.argv[0] == "redis-server" and redis.port == 6390 and redis.host == "127.0.0.1"
    assert list(redis.argv[3:5]) == ["--port", "6390"] and "--appendonly" in redis.argv
    assert redis.argv[redis.argv.index("--dir") + 1] == str(tmp_path.resolve())


def _count(port: int, sql: str, users_file: Path) -> int:
    """``sql``'s one number, asked as the stack's reader (the users `up` generated)."""
    reader = read_users_file(users_file)["reader"]
    query = {"query": sql, "database": "eventpulse", "user": reader.user, "password": reader.password}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?" + urllib.parse.urlencode(query), timeout=5) as resp:
        return int(resp.read().decode().strip() or 0)


def _anonymous_status(port: int) -> int:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/?query=SELECT+1", timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.headers["X-ClickHouse-Exception-Code"] == "516"
        return exc.code
    return 200


@pytest.mark.slow
def test_up_fills_the_warehouse_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    ports = {"BROKER": free_port(), "BROKER_STORE": free_port(), "WAREHOUSE": free_port(), "REDIS": free_port()}
    env = {k: v for k, v in os.environ.items() if k != "EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"}
    env["EVENTPULSE_DATA_DIR"] = str(tmp_path / "data")
    users_file = tmp_path / "data" / "warehouse-users.json"  # generated by this first `up`
    env |= {f"EVENTPULSE_{name}_PORT": str(port) for name, port in ports.items()}
    argv = [sys.executable, "-m", "cli", "up", "--traffic", "--rate", "500"]
    argv += ["--without", "gateway", "--without", "dagster", "--without", "dashboard"]
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        counts: list[int] = []
        windows = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (len(counts) >= 2 and counts[-1] > counts[0] and windows):
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-4000:]
            try:
                count = _count(ports["WAREHOUSE"], "SELECT count() FROM events", users_file)
                windows = _count(ports["WAREHOUSE"], "SELECT count() FROM window_aggregates", users_file)
            except OSError:
                count = 0
            if count > 0:
                counts.append(count)
            time.sleep(2)
        assert len(counts) >= 2 and counts[-1] > counts[0] > 0, (counts, (tmp_path / "up.log").read_text()[-4000:])
        assert windows > 0
        assert _anonymous_status(ports["WAREHOUSE"]) == 403  # the stack's warehouse requires credentials
        assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output[-4000:]
    for prefix in ("objectstore", "broker", "warehouse", "migrate", "flow", "traffic"):
        assert f"{prefix}" in output
    assert all(port_is_free("127.0.0.1", port) for port in ports.values())
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"orphan processes: {leftovers}"


def test_dagster_home_gets_the_project_instance_config(tmp_path: Path) -> None:
    from devstack.stack_services import prepare_dagster_home

    repo = Path(__file__).parents[2]
    home = prepare_dagster_home(Settings(data_dir=tmp_path), repo)
    assert home == tmp_path.resolve() / "dagster"
    assert (home / "dagster.yaml").read_text() == (repo / "orchestration" / "dagster.yaml").read_text()


def test_recovery_store_is_created_once_and_kept_across_starts(tmp_path: Path) -> None:
    from devstack.stack_services import ensure_recovery, recovery_dir

    settings = Settings(data_dir=tmp_path)
    directory = ensure_recovery(settings)
    store = directory / "part-0.sqlite3"
    assert directory == recovery_dir(settings) and store.exists()
    with sqlite3.connect(store) as db:  # what a run leaves: a committed epoch
        db.execute("CREATE TABLE IF NOT EXISTS kept_marker (x)")
    ensure_recovery(settings)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'kept_marker'").fetchall()  # same store
    flow = next(s for s in stack_services(settings, StackOptions()) if s.name == "flow")
    assert list(flow.argv[-6:]) == ["-r", str(directory), "-s", "1", "-b", "0"]


def test_traffic_can_go_through_the_gateway(tmp_path: Path) -> None:
    options = StackOptions(traffic=True, traffic_target="gateway")
    traffic = next(s for s in stack_services(Settings(data_dir=tmp_path), options) if s.name == "traffic")
    assert list(traffic.argv[-4:]) == ["--target", "gateway", "--create-key", "demo"]
    assert "gateway" in traffic.depends_on
    with pytest.raises(ValueError, match="needs the gateway"):
        stack_services(
            Settings(data_dir=tmp_path),
            StackOptions(traffic=True, traffic_target="gateway", without=frozenset({"gateway"})),
        )


def test_core_services_depend_only_on_what_they_need(tmp_path: Path) -> None:
    deps = {s.name: set(s.depends_on) for s in stack_services(Settings(data_dir=tmp_path), StackOptions(traffic=True))}
    assert deps["objectstore"] == set() and deps["warehouse"] == set() and deps["redis"] == set()
    assert deps["broker"] == {"objectstore"}
    assert deps["migrate"] == {"warehouse"}
    assert deps["dagster"] == deps["signin"] == {"migrate"}
    assert deps["dashboard"] == {"migrate", "signin"}  # its first admin exists before anyone can sign in
    assert deps["gateway"] == {"broker", "migrate", "redis"}


def test_long_running_services_restart_by_the_stack_settings_and_migrate_does_not(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, stack=StackSettings(restart_limit=2, restart_backoff_s=0.5))
    by_name = {s.name: s for s in stack_services(settings, StackOptions(traffic=True))}
    assert by_name["migrate"].restart is None and by_name["migrate"].oneshot  # a one-shot is done when it exits 0
    assert by_name["signin"].restart is None and by_name["signin"].oneshot
    policies = {name: spec.restart for name, spec in by_name.items() if name not in ("migrate", "signin")}
    assert set(policies.values()) == {RestartPolicy(backoff_s=0.5, max_backoff_s=30.0, limit=2, window_s=300.0)}


def _started(log: Path) -> dict[str, int]:
    """``{service: pid}`` of the latest "started NAME (pid N)" line of each service in an up log."""
    found = re.findall(r"started (\w+)(?: again \(restart \d+\))? \(pid (\d+)\)", log.read_text())
    return {name: int(pid) for name, pid in found}


@pytest.mark.slow
def test_up_restarts_a_killed_flow_and_leaves_nothing_behind_when_killed_itself(tmp_path: Path) -> None:
    """kill -9 of the flow: it restarts (counted in pipeline_metrics), the rest keeps its pids and
    events keep arriving; then kill -9 of `eventpulse up`: every process and port goes with it."""
    ports = {"BROKER": free_port(), "BROKER_STORE": free_port(), "WAREHOUSE": free_port(), "REDIS": free_port()}
    env = {k: v for k, v in os.environ.items() if k != "EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"}
    env |= {"EVENTPULSE_DATA_DIR": str(tmp_path / "data"), "EVENTPULSE_STACK_RESTART_BACKOFF_S": "0.5"}
    env |= {f"EVENTPULSE_{name}_PORT": str(port) for name, port in ports.items()}
    argv = [sys.executable, "-m", "cli", "up", "--traffic", "--rate", "200"]
    argv += ["--without", "gateway", "--without", "dagster", "--without", "dashboard"]
    log_path = tmp_path / "up.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    wh = ports["WAREHOUSE"]
    members: list[int] = []
    try:

        def until(what: str, probe, timeout: float = 90) -> None:
            deadline = time.monotonic() + timeout
            while not probe():
                assert proc.poll() is None, log_path.read_text()[-4000:]
                assert time.monotonic() < deadline, f"{what}\n{log_path.read_text()[-4000:]}"
                time.sleep(0.5)

        def count(sql: str) -> int:
            try:
                return _count(wh, sql, tmp_path / "data" / "warehouse-users.json")
            except OSError:
                return -1

        until("all ready", lambda: "all services ready" in log_path.read_text())
        until("events stored", lambda: count("SELECT count() FROM events") > 0)
        before = _started(log_path)
        os.kill(before["flow"], signal.SIGKILL)
        until("flow ready again", lambda: "flow is ready again" in log_path.read_text())
        after = _started(log_path)
        assert after["flow"] != before["flow"]
        assert {k: v for k, v in after.items() if k != "flow"} == {k: v for k, v in before.items() if k != "flow"}
        assert all(group_members(after[name]) for name in ("broker", "warehouse", "traffic"))
        until(
            "restart recorded",
            lambda: (
                count("SELECT count() FROM pipeline_metrics WHERE metric = 'service_restarts_total' AND label = 'flow'")
                == 1
            ),
        )
        stored = count("SELECT count() FROM events")
        until("events still arriving", lambda: count("SELECT count() FROM events") > stored, timeout=60)

        members = [pid for name, pgid in after.items() if name != "migrate" for pid in group_members(pgid)]
        assert len(members) >= 5  # broker wrapper + Tansu, warehouse, flow, traffic
        killed = time.monotonic()
        proc.kill()
        proc.wait(10)
        until_gone = time.monotonic() + 20
        while any(_alive(pid) for pid in members) or not all(port_is_free("127.0.0.1", p) for p in ports.values()):
            assert time.monotonic() < until_gone, [pid for pid in members if _alive(pid)]
            time.sleep(0.1)
        print(f"eventpulse up SIGKILLed: every service gone, ports free in {time.monotonic() - killed:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert "flow was killed by SIGKILL (signal 9)" in log_path.read_text()


def _log_end(bootstrap: str) -> int:
    """Messages on the events topic (sum of the partitions' high watermarks from fetches)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.partition.eof": True})
    consumer.assign([TopicPartition("events", p, 0) for p in range(4)])
    seen, done, deadline = 0, set(), time.monotonic() + 60
    while len(done) < 4 and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                seen += 1
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                done.add(msg.partition())
    consumer.close()
    return seen


@pytest.mark.slow
def test_up_stopped_and_started_again_keeps_the_topic(tmp_path: Path) -> None:
    """The durable broker under `eventpulse up`: the topic survives a stop and start of the stack."""
    ports = {"BROKER": free_port(), "BROKER_STORE": free_port(), "WAREHOUSE": free_port(), "REDIS": free_port()}
    env = {**os.environ, "EVENTPULSE_DATA_DIR": str(tmp_path / "data")}
    env |= {f"EVENTPULSE_{name}_PORT": str(port) for name, port in ports.items()}
    argv = [sys.executable, "-m", "cli", "up", "--traffic", "--rate", "300"]
    argv += ["--without", "gateway", "--without", "dagster", "--without", "dashboard"]
    bootstrap = f"127.0.0.1:{ports['BROKER']}"
    ends = []
    for run in range(2):
        log_path = tmp_path / f"up-{run}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
            try:
                deadline = time.monotonic() + 90
                while "all services ready" not in log_path.read_text():
                    assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
                    time.sleep(0.5)
                if run == 1:  # before any new traffic could make up for a lost log
                    assert _log_end(bootstrap) >= ends[0] > 0
                # Traffic's first produce may take a while on a loaded machine: wait for it to add to
                # the log (run 0: any message; run 1: more than the first run left), not a fixed time.
                floor, deadline = ends[0] if ends else 0, time.monotonic() + 60
                while (end := _log_end(bootstrap)) <= floor and time.monotonic() < deadline:
                    time.sleep(1)
                ends.append(end)
            finally:
                proc.send_signal(signal.SIGINT)
                assert proc.wait(60) == 0, log_path.read_text()[-4000:]
    assert ends[1] > ends[0]
    assert (tmp_path / "data" / "broker" / "tansu" / "clusters").is_dir()
