"""The dashboards' warehouse client, query cache and scoped read path, shared by every page's queries.

All values travel as bound parameters (``{name:Type}``); only our own identifiers (table names
from `dashboards.sources.TABLES`, grouping columns from a fixed set) are formatted into SQL.
Results come back as Arrow and are returned as polars frames. The client is created once per
process and warehouse (`client`), with no HTTP session, so Streamlit's threads can share it.

Every tenant-facing query (live, historical, search, dead letters, late events, alerts, the SQL
console) runs through `tenant_frame`: the scoped read path (`eventpulse.access.scoped_sql`)
rewrites each table reference to the selected tenant's rows or refuses the query. Operator pages
(pipeline health, archive runs) read platform tables without a tenant column through `frame`.
"""

from typing import Any

import polars as pl
import streamlit as st
from clickhouse_connect.driver.client import Client

from dashboards import signin
from eventpulse.access.scoped_sql import Scope, ScopedReader
from eventpulse.cache.client import sync_client
from eventpulse.cache.query_cache import QueryCache
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client

LIVE_TTL = 1
"""Seconds a live result may be reused: below the refresh period, shared by concurrent viewers."""
HISTORY_TTL = 60
STATUS_TTL = 5
LIST_TTL = 300
QUERY_SETTINGS = {"max_execution_time": 30}
DT = "DateTime64(3, 'UTC')"
"""The ClickHouse type of the time bounds the queries bind."""


@st.cache_resource(show_spinner=False)
def _client_for(url: str, database: str) -> Client:
    settings = Settings().warehouse
    if (settings.url, settings.database) != (url, database):  # settings changed between the two reads
        settings = settings.model_copy(update={"url": url, "database": database})
    return create_client(settings, role="reader", autogenerate_session_id=False)


def client() -> Client:
    """The process's client for the configured warehouse (one per URL and database)."""
    settings = Settings().warehouse
    return _client_for(settings.url, settings.database)


@st.cache_resource(show_spinner=False)
def _query_cache_for(url: str, prefix: str, ttl_s: float, version_s: float, retry_s: float) -> QueryCache:
    redis = Settings().redis.model_copy(update={"url": url, "key_prefix": prefix, "retry_s": retry_s})
    return QueryCache(sync_client(redis), prefix=prefix, ttl_s=ttl_s, version_s=version_s, retry_s=retry_s)


def query_cache() -> QueryCache:
    """The process's query cache: shared by every dashboard process through Redis when
    ``EVENTPULSE_REDIS_URL`` is set, a pass-through otherwise (see `eventpulse.cache.query_cache`)."""
    settings = Settings()
    r = settings.redis
    d = settings.dashboard
    return _query_cache_for(r.url, r.key_prefix, d.query_cache_ttl_s, d.query_cache_version_s, r.retry_s)


def frame(sql: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> pl.DataFrame:
    """Run ``sql`` with bound ``params`` (or take its result from the query cache, when the tables it
    reads have not changed since) and return the result as a polars frame (operator pages)."""
    return query_cache().frame(client(), sql, params or {}, {**QUERY_SETTINGS, **(settings or {})})


@st.cache_resource(show_spinner=False)
def _scoped_for(url: str, database: str) -> ScopedReader:
    return ScopedReader(_client_for(url, database), database, Settings().access)


def scoped_reader() -> ScopedReader:
    """The process's scoped read path for the configured warehouse."""
    settings = Settings().warehouse
    return _scoped_for(settings.url, settings.database)


def scope_for(tenant: str) -> Scope:
    """The tenant selector's choice as a scope: one tenant, or every tenant ("" = the operator view).

    The signed-in user decides what may be asked (`dashboards.signin.scope_tenant`): a tenant user
    gets their own tenant or `ScopeError`, whatever a widget or the URL says.
    """
    tenant = signin.scope_tenant(tenant)
    return Scope.of(tenant) if tenant else Scope.everyone()


def tenant_frame(
    sql: str, tenant: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Run a tenant-facing query scoped to ``tenant`` (every table filtered, or `Refused`)."""
    reader = scoped_reader()
    scoped = reader.scoped(sql, scope_for(tenant), params)
    limits = reader.settings(**{**QUERY_SETTINGS, **(settings or {})})
    return query_cache().frame(reader.client, scoped.sql, scoped.params, limits)  # keyed by the scoped SQL


def tenant_clause(column: str = "tenant") -> str:
    return f"({column} = {{tenant:String}} OR {{tenant:String}} = '')"


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def table_exists(name: str) -> bool:
    """Whether ``name`` exists in the dashboard's database (tables other helpers add later)."""
    sql = "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {name:String}"
    return bool(client().query(sql, parameters={"name": name}).result_rows[0][0])
