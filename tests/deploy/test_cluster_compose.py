"""The cluster profile (docker-compose.cluster.yml + deploy/): its parts agree with each other.

Static: no Docker engine here. What would break a `docker compose up` of the cluster without any
single file being wrong: a server missing from remote_servers, two servers with the same macros, a
Keeper quorum that names other hosts, a Bytewax process whose -a list differs from its peers',
HAProxy pointing at gateways that do not exist.
"""

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventpulse.config.broker import BrokerSettings
from eventpulse.config.stream import StreamSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CLUSTER_XML = ET.parse(ROOT / "deploy/clickhouse/cluster.xml").getroot()
KEEPER_XML = ET.parse(ROOT / "deploy/clickhouse/keeper.xml").getroot()
HAPROXY = (ROOT / "deploy/haproxy/haproxy.cfg").read_text()


def env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}


def named(prefix: str) -> list[str]:
    return sorted(n for n in SERVICES if re.fullmatch(rf"{prefix}\d+(-r\d+)?", n))


def command_text(name: str) -> str:
    command = SERVICES[name].get("command") or []
    return " ".join(command) if isinstance(command, list) else str(command)


def test_the_profile_has_the_promised_shape() -> None:
    assert len(named("redpanda-")) == 3
    assert len(named("ch-keeper-")) == 3
    assert len(named("ch-s")) == 4
    assert len(named("flow-")) >= 2
    assert len(named("gateway-")) == 2
    assert "lb" in SERVICES


def test_redpanda_brokers_seed_each_other_and_advertise_themselves() -> None:
    brokers = named("redpanda-")
    for name in brokers:
        text = command_text(name)
        seeds = re.search(r"--seeds=(\S+)", text)
        assert seeds and sorted(s.split(":")[0] for s in seeds[1].split(",")) == brokers, name
        assert f"--advertise-kafka-addr=internal://{name}:9092" in text
        assert f"--advertise-rpc-addr={name}:33145" in text
        assert "dev-container" not in text, f"{name}: dev-container mode is for a single node"
    broker = BrokerSettings(bootstrap=env("topics")["EVENTPULSE_BROKER_BOOTSTRAP"], replication_factor=3)
    assert sorted(b.split(":")[0] for b in broker.bootstrap.split(",")) == brokers
    assert env("topics")["EVENTPULSE_BROKER_REPLICATION_FACTOR"] == str(len(brokers))


def test_every_clickhouse_server_is_in_remote_servers_with_unique_macros() -> None:
    cluster_name = env("migrate")["EVENTPULSE_WAREHOUSE_CLUSTER"]
    assert WarehouseSettings(cluster=cluster_name).cluster == cluster_name
    (cluster,) = CLUSTER_XML.find("remote_servers")
    assert cluster.tag == cluster_name
    assert CLUSTER_XML.findtext("macros/cluster") == cluster_name
    assert CLUSTER_XML.find("macros/shard").get("from_env") == "CLICKHOUSE_SHARD"
    assert CLUSTER_XML.find("macros/replica").get("from_env") == "CLICKHOUSE_REPLICA"
    layout = {
        index + 1: sorted(r.findtext("host") for r in shard.findall("replica"))
        for index, shard in enumerate(cluster.findall("shard"))
    }
    assert len(layout) == 2 and all(len(hosts) == 2 for hosts in layout.values())
    for shard in cluster.findall("shard"):
        assert shard.findtext("internal_replication") == "true"
    macros = set()
    for name in named("ch-s"):
        e = env(name)
        assert name in layout[int(e["CLICKHOUSE_SHARD"])], f"{name} is not in its shard's remote_servers entry"
        assert e["CLICKHOUSE_REPLICA"] == name == SERVICES[name]["hostname"]
        macros.add((e["CLICKHOUSE_SHARD"], e["CLICKHOUSE_REPLICA"]))
        mounts = " ".join(SERVICES[name]["volumes"])
        assert "deploy/clickhouse/cluster.xml:/etc/clickhouse-server/config.d/" in mounts
        assert "deploy/clickhouse/users.xml:/etc/clickhouse-server/users.d/" in mounts
    assert len(macros) == 4
    assert {h for hosts in layout.values() for h in hosts} == set(named("ch-s"))


def test_keeper_quorum_matches_the_services_and_the_servers_config() -> None:
    keepers = named("ch-keeper-")
    raft = {int(s.findtext("id")): s.findtext("hostname") for s in KEEPER_XML.iter("server")}
    assert sorted(raft.values()) == keepers
    assert sorted(int(env(k)["KEEPER_SERVER_ID"]) for k in keepers) == sorted(raft)
    for name in keepers:
        assert raft[int(env(name)["KEEPER_SERVER_ID"])] == name
    assert KEEPER_XML.find("keeper_server/server_id").get("from_env") == "KEEPER_SERVER_ID"
    port = KEEPER_XML.findtext("keeper_server/tcp_port")
    nodes = sorted((n.findtext("host"), n.findtext("port")) for n in CLUSTER_XML.iter("node"))
    assert nodes == [(k, port) for k in keepers]
    ready = KEEPER_XML.findtext("keeper_server/http_control/readiness/endpoint")
    http_port = KEEPER_XML.findtext("keeper_server/http_control/port")
    for name in keepers:
        assert f"http://127.0.0.1:{http_port}{ready}" in " ".join(SERVICES[name]["healthcheck"]["test"])


def test_bytewax_processes_form_one_cluster() -> None:
    flows = named("flow-")
    indexes, address_lists = [], set()
    for name in flows:
        text = command_text(name)
        index = re.search(r"-i (\d+)", text)
        addresses = re.search(r'-a "([^"]+)"', text)
        assert index and addresses, name
        indexes.append(int(index[1]))
        address_lists.add(addresses[1])
        assert SERVICES[name]["hostname"] == name
        assert "-r /recovery" in text and "flow-recovery:/recovery" in SERVICES[name]["volumes"]
        assert "recovery-init" in SERVICES[name]["depends_on"]
    assert sorted(indexes) == list(range(len(flows)))
    (addresses,) = address_lists  # every process names the same peers, in the same order
    peers = addresses.split(";")
    assert [p.split(":")[0] for p in peers] == [f"flow-{i}" for i in range(len(flows))]
    for i, name in enumerate(flows):
        assert peers[int(re.search(r"-i (\d+)", command_text(name))[1])].startswith(name)
        assert i == int(name.rsplit("-", 1)[1])


def test_partitions_and_key_buckets_cover_every_worker() -> None:
    flows = named("flow-")
    workers = int(re.search(r"-w \$\{FLOW_WORKERS:-(\d+)\}", command_text(flows[0]))[1])
    stream = StreamSettings(key_buckets=int(env(flows[0])["EVENTPULSE_STREAM_KEY_BUCKETS"]))
    assert stream.key_buckets == workers * len(flows)
    partitions = int(re.search(r":-(\d+)", env(flows[0])["EVENTPULSE_BROKER_PARTITIONS"])[1])
    assert partitions >= workers * len(flows)
    recovery = re.search(r"FLOW_RECOVERY_PARTS:-(\d+)", command_text("recovery-init"))
    assert recovery and int(recovery[1]) >= len(flows)


def test_haproxy_balances_the_gateways_and_checks_their_health() -> None:
    servers = re.findall(r"^\s*server (\S+) (\S+):8000", HAPROXY, re.M)
    assert sorted(host for _, host in servers) == named("gateway-")
    assert re.search(r"http-check send meth GET uri /api/health\b", HAPROXY)
    assert re.search(r"default-server check ", HAPROXY)
    assert "retry-on conn-failure" in HAPROXY and "empty-response" not in HAPROXY
    assert "8000:8000" in " ".join(SERVICES["lb"]["ports"])
    for gateway in named("gateway-"):
        assert SERVICES["lb"]["depends_on"][gateway]["condition"] == "service_healthy"
        assert "/api/health" in " ".join(SERVICES[gateway]["healthcheck"]["test"])


@pytest.mark.integration  # runs haproxy in a subprocess
def test_haproxy_accepts_the_configuration() -> None:
    assert shutil.which("haproxy"), "haproxy is not installed: `make haproxy` (make test installs it)"
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(ROOT / "deploy/haproxy/haproxy.cfg")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cluster_profile_inserts_synchronously() -> None:
    """Distributed inserts must land on the shards before the flow's snapshot counts them written."""
    users = ET.parse(ROOT / "deploy/clickhouse/users.xml").getroot()
    assert users.findtext("profiles/default/distributed_foreground_insert") == "1"
    assert users.findtext("profiles/default/distributed_ddl_output_mode") == "throw"


def test_the_cluster_environment_parses_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values, not only names: the cluster's app environment is valid for the settings' types."""
    for key in list(os.environ):
        if key.startswith("EVENTPULSE_"):
            monkeypatch.delenv(key)
    for key, value in env("flow-0").items():
        if key.startswith("EVENTPULSE_"):
            monkeypatch.setenv(key, re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value))
    settings = Settings()
    assert settings.warehouse.cluster == "eventpulse"
    assert settings.broker.replication_factor == 3
    assert settings.stream.key_buckets == 12
