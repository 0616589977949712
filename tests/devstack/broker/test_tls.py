"""The local broker over TLS (EVENTPULSE_BROKER_TLS_CERTFILE/KEYFILE) and every client with
``security.protocol=SSL`` + ``ssl.ca.location`` (EVENTPULSE_BROKER_SECURITY_PROTOCOL, _SSL_CA_LOCATION):
admin, idempotent producer, the real dataflow's source and dead-letter producer. Clients without the
CA, or in plaintext, get nothing (negative controls)."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from devstack.traffic.generator import EventFactory
from eventpulse.broker.admin import admin_client, ensure_topics, producer_config
from eventpulse.config.broker import BrokerSettings
from eventpulse.warehouse.client import create_client
from tests.dashboards.seeding import PROFILE
from tests.support.pipeline import run_flow_until_drained
from tests.support.services import free_port, stop
from tests.support.tls import make_tls_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-broker")
    tls = make_tls_files(root / "tls")
    port = free_port()
    env = {
        **os.environ,
        "EVENTPULSE_BROKER_TLS_CERTFILE": str(tls.cert),
        "EVENTPULSE_BROKER_TLS_KEYFILE": str(tls.key),
    }
    log = root / "broker.log"
    argv = [sys.executable, "-m", "devstack.broker", "--host", "127.0.0.1", "--port", str(port), "--storage", "memory"]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_line(log, "broker ready", proc)
        yield f"127.0.0.1:{port}", tls
    finally:
        stop(proc)


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _settings(bootstrap: str, ca: Path, **extra) -> BrokerSettings:
    suffix = uuid.uuid4().hex[:8]
    return BrokerSettings(
        bootstrap=bootstrap,
        security_protocol="SSL",
        ssl_ca_location=ca,
        events_topic=f"tls-events-{suffix}",
        dead_letter_topic=f"tls-dead-{suffix}",
        **extra,
    )


def test_producer_and_the_dataflow_over_tls(tls_broker, warehouse, tmp_path):
    bootstrap, tls = tls_broker
    broker = _settings(bootstrap, tls.ca)
    ensure_topics(admin_client(broker), [broker.events_topic, broker.dead_letter_topic], partitions=2)
    messages = list(EventFactory(PROFILE, seed=5).messages(2_000, int(time.time() * 1000) - 120_000, 50.0))
    producer = Producer(producer_config(broker))
    for m in messages:
        producer.produce(broker.events_topic, key=m.key, value=m.value)
    assert producer.flush(30) == 0
    env = {"EVENTPULSE_BROKER_SECURITY_PROTOCOL": "SSL", "EVENTPULSE_BROKER_SSL_CA_LOCATION": str(tls.ca)}
    run_flow_until_drained(broker, warehouse, extra_env=env, timeout=120, log=tmp_path / "flow.log")
    client = create_client(warehouse, role="admin")
    valid = {(m.tenant, m.event["id"]) for m in messages if m.valid}
    stored = set(client.query("SELECT tenant, id FROM events FINAL").result_rows)
    dead = client.query("SELECT count() FROM dead_letters").result_rows[0][0]
    client.close()
    assert stored == valid
    assert dead == len(messages) - len(valid)


@pytest.mark.parametrize("case", ["plaintext", "another CA", "system CAs only"])
def test_clients_without_the_ca_or_tls_get_nothing(tls_broker, case):
    bootstrap, tls = tls_broker
    options = {
        "plaintext": {},
        "another CA": {"security.protocol": "SSL", "ssl.ca.location": str(tls.other_ca)},
        "system CAs only": {"security.protocol": "SSL"},
    }[case]
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **options})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    trusted = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(tls.ca)})
    assert trusted.list_topics(timeout=10).topics is not None  # the control: with the CA it answers


def test_client_security_options():
    assert BrokerSettings().client_security() == {}
    assert BrokerSettings(security_protocol="SSL", ssl_ca_location="ca.pem").client_security() == {
        "security.protocol": "SSL",
        "ssl.ca.location": "ca.pem",
    }
    assert producer_config(BrokerSettings(security_protocol="SSL"))["security.protocol"] == "SSL"
