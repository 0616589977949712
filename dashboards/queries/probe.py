"""HTTP status probes of the other components (the gateway's health and metrics endpoints)."""

from dataclasses import dataclass

import httpx
import streamlit as st

from dashboards.queries.client import STATUS_TTL


@dataclass(frozen=True)
class Probe:
    """The answer of one HTTP status probe."""

    url: str
    ok: bool
    status: int | None
    elapsed_ms: float | None
    body: str
    error: str = ""


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def probe(url: str, timeout_s: float) -> Probe:
    """GET ``url`` with a short timeout; never raises."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Probe(url, False, None, None, "", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    elapsed = response.elapsed.total_seconds() * 1000
    return Probe(url, response.is_success, response.status_code, elapsed, response.text[:20_000])
