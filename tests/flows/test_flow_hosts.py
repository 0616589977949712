"""Two flow processes as two hosts: network namespaces joined by a bridge, one process killed.

The test builds its own small network (``ip netns`` + veth pairs on a bridge, a /24 of 10.231.x.0
chosen per run): the broker and the warehouse server listen on the bridge address ``.1``, flow
process 0 runs in namespace ``a`` (``.2``) and process 1 in namespace ``b`` (``.3``), so the Bytewax
cluster's exchange goes over real interfaces between separate network stacks. Process 1 is killed
with SIGKILL mid-stream; a Bytewax cluster does not survive losing a member (process 0 stops too),
so both are started again from the shared recovery store and run to the end. The warehouse then
holds every valid event once and the same windows as one process over the same topic.
Needs root (CAP_NET_ADMIN) and ``ip``; the test says so and skips otherwise.
"""

import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.ports import free_port, wait_for_http, wait_for_port
from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.access.credentials import users_file_for
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.reconcile import reconcile, stream_rows
from eventpulse.aggregation.spec import window_specs
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import REPO, flow_command, flow_env, init_recovery, produce, run_flow_until_drained
from tests.support.services import stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAMILIES = window_specs((10, 60), ((300, 60),))
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
ENV = {"EVENTPULSE_STREAM_KEY_BUCKETS": "2", "EVENTPULSE_STREAM_BATCH_SIZE": "2000"}


@dataclass(frozen=True)
class Hosts:
    gateway: str  # the bridge address: broker and warehouse listen here
    names: tuple[str, str]  # the namespaces of flow processes 0 and 1
    addresses: tuple[str, str]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    tag, subnet = uuid.uuid4().hex[:6], random.randint(1, 250)
    bridge, names = f"epbr{tag}", (f"ep-{tag}-a", f"ep-{tag}-b")
    try:
        _ip("link", "add", bridge, "type", "bridge")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create network devices here: {exc.stderr.strip()}")
    try:
        _ip("addr", "add", f"10.231.{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for n, name in enumerate(names):
            outer, inner = f"ep{tag}{n}o", f"ep{tag}{n}i"
            _ip("netns", "add", name)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", name)
            _ip("link", "set", outer, "master", bridge)
            _ip("link", "set", outer, "up")
            _ip("-n", name, "addr", "add", f"10.231.{subnet}.{n + 2}/24", "dev", inner)
            _ip("-n", name, "link", "set", inner, "up")
            _ip("-n", name, "link", "set", "lo", "up")
        yield Hosts(f"10.231.{subnet}.1", names, (f"10.231.{subnet}.2", f"10.231.{subnet}.3"))
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def _service(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *argv], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _start_cluster(
    hosts: Hosts, env: dict[str, str], recovery: Path, log_dir: Path, ports: tuple[int, int]
) -> list[subprocess.Popen]:
    addresses = [f"{address}:{port}" for address, port in zip(hosts.addresses, ports, strict=True)]
    procs = []
    for index, name in enumerate(hosts.names):
        argv = ["ip", "netns", "exec", name, *flow_command(1, recovery, process=index, addresses=addresses)]
        with (log_dir / f"flow-{index}.log").open("ab") as out:
            procs.append(subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
    return procs


def test_two_flow_hosts_one_killed_and_restarted_give_one_process_results(hosts: Hosts, tmp_path: Path) -> None:
    bport, wport = free_port(hosts.gateway), free_port(hosts.gateway)
    broker_argv = ["-m", "devstack.broker", "--host", hosts.gateway, "--port", str(bport), "--storage", "memory"]
    broker_proc = _service([*broker_argv, "--partitions", "4"], tmp_path / "broker.log")
    wh_argv = ["-m", "devstack.warehouse_server", "--host", hosts.gateway, "--port", str(wport)]
    wh_proc = _service([*wh_argv, "--path", str(tmp_path / "warehouse")], tmp_path / "warehouse.log")
    try:
        wait_for_port(hosts.gateway, bport, 60)
        wait_for_http(f"http://{hosts.gateway}:{wport}/ping", 60)
        bootstrap, topic = f"{hosts.gateway}:{bport}", f"events-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, 4, 1)]).values():
            f.result(timeout=30)
        broker = BrokerSettings(bootstrap=bootstrap, events_topic=topic, dead_letter_topic=f"dead-{topic}")
        messages = list(EventFactory(TrafficProfile(), seed=9).messages(60_000, int(time.time() * 1000) - 3_600_000))
        produce(bootstrap, topic, messages)
        valid = sum(m.valid for m in messages)

        def database(name: str) -> WarehouseSettings:
            settings = WarehouseSettings(
                url=f"http://{hosts.gateway}:{wport}",
                database=name,
                credentials_file=users_file_for(tmp_path / "warehouse"),
            )
            migrate(settings)
            return settings

        one = database("one")
        run_flow_until_drained(broker, one, extra_env=ENV, timeout=240, log=tmp_path / "one.log")

        two = database("two")
        recovery = tmp_path / "recovery"
        init_recovery(recovery)
        ports = (free_port(), free_port())
        procs = _start_cluster(hosts, flow_env(broker, two, tail=True, extra_env=ENV), recovery, tmp_path, ports)
        client = create_client(two, role="admin")
        deadline = time.monotonic() + 120
        while client.query("SELECT count() FROM events").result_rows[0][0] < valid // 3:
            assert all(p.poll() is None for p in procs), (tmp_path / "flow-0.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the cluster made no progress"
            time.sleep(0.05)
        procs[1].kill()  # `ip netns exec` execs the flow: this is the flow process itself
        procs[1].wait()
        try:
            procs[0].wait(60)  # a cluster that lost a member stops
        except subprocess.TimeoutExpired:
            procs[0].kill()
            procs[0].wait()
        written_before_restart = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
        assert written_before_restart < valid, "the kill came after everything was written"

        restarted_at = datetime.now(UTC)
        procs = _start_cluster(hosts, flow_env(broker, two, tail=False, extra_env=ENV), recovery, tmp_path, ports)
        for proc in procs:
            assert proc.wait(240) == 0, (tmp_path / "flow-0.log").read_text()[-3000:]
        assert client.query("SELECT count(), uniqExact(id) FROM events FINAL").result_rows[0] == (valid, valid)
        differences = reconcile(client, FAMILIES, *EVERYTHING)
        assert not differences, [d.as_dict() for d in differences[:5]]
        writers = client.query(
            "SELECT count(DISTINCT process) FROM pipeline_metrics WHERE metric = 'events_out_total' AND value > 0"
            " AND time >= {t:DateTime64(3, 'UTC')}",
            parameters={"t": restarted_at},
        ).result_rows[0][0]
        assert writers == 2  # after the restart, rows were written on both hosts
        client.close()
        rows = {}
        for settings in (one, two):
            admin = create_client(settings, role="admin")
            rows[settings.database] = [r for w in FAMILIES for r in stream_rows(admin, w, *EVERYTHING)]
            admin.close()
        same = compare_rows(rows["two"], rows["one"])
        assert not same, [d.as_dict() for d in same[:5]]
    finally:
        stop_group(wh_proc, 15)
        stop_group(broker_proc, 15)
