"""Gateway HTTPS (EVENTPULSE_GATEWAY_TLS_CERTFILE/KEYFILE): clients that trust the CA are served;
clients that do not, or that speak plain HTTP, are not (negative controls)."""

import ssl

import httpx
import pytest

from tests.gateway.conftest import event, read_topic, wait_for_key
from tests.support.tls import make_tls_files


def test_gateway_serves_https_only_with_its_certificate(start_gateway, make_key, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    key = make_key("acme")
    with start_gateway(tls_certfile=tls.cert, tls_keyfile=tls.key) as gw:
        wait_for_key(gw, key)
        https = gw.url.replace("http://", "https://")
        with httpx.Client(base_url=https, verify=ssl.create_default_context(cafile=str(tls.ca))) as client:
            answer = client.post("/api/events", json=event("over-tls"), headers={"X-API-Key": key})
            assert answer.status_code == 202, answer.text
            assert client.get("/api/health").status_code == 200
        untrusted = ssl.create_default_context(cafile=str(tls.other_ca))
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{https}/api/health", verify=untrusted)
        with pytest.raises(httpx.HTTPError):  # plain HTTP to a TLS-only port
            httpx.get(f"{gw.url}/api/health", timeout=5)
        on_topic = read_topic(gw.settings.broker.bootstrap, gw.settings.broker.events_topic, expect=1)
    assert [v["id"] for _, v in on_topic] == ["over-tls"]


def test_a_certificate_without_its_key_is_refused():
    from eventpulse.config.gateway import GatewaySettings

    with pytest.raises(ValueError, match="both tls_certfile and tls_keyfile"):
        GatewaySettings(tls_certfile="cert.pem")
