"""The documentation builds strictly and offline, and its generated reference pages are complete.

``mkdocs build --strict`` runs as ``make test`` runs it (any warning fails: a broken link, a page missing
from the nav), with every outgoing network connection refused, into a temporary directory. Then the built
HTTP API page must name every route the gateway serves and every operation and schema of its OpenAPI
document, and the configuration page every field of every settings section with its environment variable,
reached from ``Settings`` itself, not by the generator's own module scan. A setting or a route added without
reaching the pages fails here; so does a documented variable that the settings do not actually read.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from eventpulse.config.base import Section
from eventpulse.settings import Settings
from scripts import docs_reference
from tests.docs.test_cookbook import CHECKS, cookbook_queries

REPO = Path(__file__).resolve().parents[2]

# Runs mkdocs with every non-loopback connection and name lookup refused: the build must not need the network.
_OFFLINE_MKDOCS = """
import socket, sys
_LOCAL = ("127.", "::1", "localhost")
def _refuse(host):
    if not str(host).startswith(_LOCAL):
        raise OSError(f"network access during the docs build: {host}")
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
def connect(self, address):
    _refuse(address[0] if isinstance(address, tuple) else address)
    return _connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
from mkdocs.__main__ import cli
sys.argv = ["mkdocs", *sys.argv[1:]]
cli()
"""


BUILDS_THE_SITE = pytest.mark.integration
"""Tests of the built site: the `site` fixture runs mkdocs in a subprocess (integration tier)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("EVENTPULSE_")}  # the pages show defaults
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_MKDOCS, "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page (tags dropped, entities decoded, whitespace collapsed)."""
    body = (site / page).read_text()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


# --- What the pages must hold, found independently of the generator --------------------------------


def gateway_paths() -> set[str]:
    """Every path the gateway app answers: its raw ASGI ingest routes and its Starlette routes."""
    from gateway.app import create_app

    app = create_app(Settings(), configure_logs=False)  # builds clients lazily: nothing connects
    starlette = app.app if hasattr(app, "hot") else app.app.app  # behind CORS when origins are set
    return set(app.hot) | {route.path for route in starlette.routes}


def settings_variables() -> Iterator[tuple[type[BaseModel], str, str]]:
    """(section class, field, environment variable) for every field reachable from `Settings`."""

    def walk(cls: type[BaseModel]) -> Iterator[tuple[type[BaseModel], str, str]]:
        prefix = cls.model_config.get("env_prefix", "")
        for name, info in cls.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, Section):
                yield from walk(info.annotation)
            else:
                yield cls, name, f"{prefix}{name}".upper()

    yield from walk(Settings)


def missing_routes(api_page: str, doc: dict, served: set[str]) -> set[str]:
    """Operations without their heading (``POST /api/events ¶``), served paths never named, schemas
    without their heading."""
    methods = ("get", "post", "put", "patch", "delete")
    operations = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item if m in methods}
    missing = {op for op in operations if f" {op} ¶" not in f" {api_page}"}
    missing |= {path for path in served if not re.search(rf"(?<![\w/]){re.escape(path)}(?![\w/])", api_page)}
    missing |= {f"schema {name}" for name in doc["components"]["schemas"] if f" {name} ¶" not in api_page}
    return missing


def missing_settings(config_page: str) -> set[str]:
    return {env for _, _, env in settings_variables() if f" {env} " not in config_page}


# --- Tests ---------------------------------------------------------------------------------------


@BUILDS_THE_SITE
def test_every_page_of_the_nav_is_built(site: Path) -> None:
    for page in (
        "index.html",
        "getting-started.html",
        "architecture.html",
        "operations/runbook.html",
        "operations/faults.html",
        "cookbook.html",
        "reference/api.html",
        "reference/configuration.html",
        "conventions.html",
    ):
        assert (site / page).is_file(), page
    assert 'src="assets/data-path.svg"' in (site / "architecture.html").read_text()
    assert (site / "assets" / "data-path.svg").read_text().startswith("<svg")


@BUILDS_THE_SITE
def test_api_page_lists_every_route_operation_and_schema(site: Path) -> None:
    doc = docs_reference.openapi_document()
    served = gateway_paths()
    assert {"/api/events", "/api/events/batch", "/api/health", "/api/stream", "/ws/events"} <= served
    assert served - {"/openapi.json", "/ws/events", "/ws/ingest"} <= set(doc["paths"]), (
        "a route missing from the OpenAPI document"
    )
    assert missing_routes(page_text(site, "reference/api.html"), doc, served) == set()


@BUILDS_THE_SITE
def test_configuration_page_lists_every_setting(site: Path) -> None:
    page = page_text(site, "reference/configuration.html")
    variables = list(settings_variables())
    assert len(variables) > 80
    assert missing_settings(page) == set()
    # Each row carries the field's default, as the class declares it.
    assert "EVENTPULSE_STREAM_WINDOW_SECONDS tuple[int, ...] [10, 60]" in page
    assert "EVENTPULSE_GATEWAY_MAX_BATCH_EVENTS int 10000 > 0 Most events in one batch request." in page


@BUILDS_THE_SITE
def test_the_checks_catch_a_page_that_drifted(site: Path) -> None:
    """Negative control: the same checks on pages with one row taken out report exactly that row."""
    config = page_text(site, "reference/configuration.html")
    assert missing_settings(config.replace(" EVENTPULSE_STREAM_TAIL ", " ")) == {"EVENTPULSE_STREAM_TAIL"}
    doc = docs_reference.openapi_document()
    api = page_text(site, "reference/api.html").replace("/ws/events", "/ws/x")
    assert missing_routes(api, doc, gateway_paths()) == {"/ws/events"}


def test_every_documented_variable_is_read_by_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting a documented variable to garbage makes its section refuse it (or, for text, take it):
    the names on the page are the ones pydantic-settings reads."""
    for section in docs_reference.settings_sections():
        for row in section.rows:
            monkeypatch.setenv(row.env, "[not valid for any number, bool or tuple")
            try:
                value = section.cls()
            except Exception as exc:  # pydantic's ValidationError or pydantic-settings' SettingsError
                assert row.field in str(exc) or row.env in str(exc), (row.env, exc)
            else:
                read = getattr(value, row.field)
                read = read.get_secret_value() if hasattr(read, "get_secret_value") else str(read)
                assert read == "[not valid for any number, bool or tuple", row.env
            monkeypatch.delenv(row.env)


def test_generated_pages_do_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = docs_reference.generated_pages()
    monkeypatch.setenv("EVENTPULSE_GATEWAY_MAX_BATCH_EVENTS", "7")
    monkeypatch.setenv("EVENTPULSE_STREAM_BATCH_SIZE", "3")
    assert docs_reference.generated_pages() == before


def test_every_cookbook_query_has_a_check() -> None:
    """A query added to the page without a check here, or a check whose query was removed, fails."""
    names = cookbook_queries()
    assert len(names) >= 8
    assert set(names) == set(CHECKS)


def test_query_extraction_needs_the_marker() -> None:
    text = "```sql\n-- cookbook: a\nSELECT 1\n```\n\n```sql\nSELECT 2\n```\n"
    assert cookbook_queries(text) == {"a": "-- cookbook: a\nSELECT 1\n"}
