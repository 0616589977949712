"""The local warehouse server over HTTPS (EVENTPULSE_WAREHOUSE_TLS_CERTFILE/KEYFILE), reached by
clickhouse-connect with ``secure`` and the test's CA (EVENTPULSE_WAREHOUSE_CA_CERT); without that CA,
or over plain HTTP, nothing gets through (negative controls)."""

import os
import ssl
import subprocess
import sys
import urllib.request
import uuid

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from eventpulse.audit import Action, Actor, AuditWriter
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.services import _wait, free_port, session_users_file, stop
from tests.support.tls import make_tls_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-warehouse")
    tls = make_tls_files(root / "tls")
    port = free_port()
    env = {
        **os.environ,
        "EVENTPULSE_WAREHOUSE_TLS_CERTFILE": str(tls.cert),
        "EVENTPULSE_WAREHOUSE_TLS_KEYFILE": str(tls.key),
    }
    argv = [sys.executable, "-m", "devstack.warehouse_server", "--host", "127.0.0.1", "--port", str(port)]
    log = root / "warehouse.log"
    with log.open("ab") as out:
        argv += ["--path", str(root / "data"), "--users-file", str(session_users_file())]  # the session's users
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    context = ssl.create_default_context(cafile=str(tls.ca))

    def ping() -> bool:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/ping", timeout=1, context=context) as resp:
            return resp.status == 200

    try:
        _wait(ping, proc, "TLS warehouse server", log)
        yield f"https://127.0.0.1:{port}", tls
    finally:
        stop(proc)


def test_clickhouse_connect_migrates_inserts_and_queries_over_tls(tls_warehouse):
    url, tls = tls_warehouse
    settings = WarehouseSettings(url=url, ca_cert=tls.ca, database=f"tls_{uuid.uuid4().hex[:8]}")
    assert migrate(settings)  # the whole schema, over HTTPS
    client = create_client(settings, role="admin")
    entry = AuditWriter(client, Actor("ci", "operator")).record(Action.RETENTION_RUN, target="over-tls")
    rows = client.query(
        "SELECT actor, target FROM audit_log WHERE event_id = {id:String}", parameters={"id": entry.event_id}
    )
    assert rows.result_rows == [("ci", "over-tls")]
    assert client.query("SELECT 1 + {n:UInt8}", parameters={"n": 1}).result_rows == [(2,)]
    client.close()


@pytest.mark.parametrize(
    "case",
    ["system CAs only", "another CA", "plain http"],
)
def test_without_the_ca_or_without_tls_nothing_gets_through(tls_warehouse, case):
    url, tls = tls_warehouse
    settings, reason = {
        "system CAs only": (WarehouseSettings(url=url), "CERTIFICATE_VERIFY_FAILED"),
        "another CA": (WarehouseSettings(url=url, ca_cert=tls.other_ca), "CERTIFICATE_VERIFY_FAILED"),
        "plain http": (WarehouseSettings(url=url.replace("https://", "http://")), "Connection"),
    }[case]
    with pytest.raises(OperationalError, match=reason):
        create_client(
            settings.model_copy(update={"connect_timeout_s": 2.0, "query_timeout_s": 5.0}), role="admin", database=None
        )


def test_the_server_refuses_a_certificate_without_its_key():
    with pytest.raises(ValueError, match="both tls_certfile and tls_keyfile"):
        WarehouseSettings(tls_keyfile="server.key")
