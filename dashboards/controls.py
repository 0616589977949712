"""The sidebar controls every page shares: tenant and time range.

A tenant analyst's or tenant admin's tenant is fixed to their own (from the signed-in session,
never the URL); operators and platform admins pick any tenant or all of them.

The entry point draws them once per run (so they keep their values across pages) and the pages
read the result with `filters()`. Times are UTC and rounded, so repeated runs within the same
minute (or second, on live pages) hit the query cache.

The choice is also kept in the URL's query (``?tenant=tenant-03&range=6h``, ``range=custom&from=...&to=...``):
every run writes it, so the address bar on any page is a link that opens the same view, and a session
opened from such a link starts with it. What the URL asks for is only a starting value, checked like a
pick: an unknown tenant or range is ignored, and a tenant user's tenant is never taken from it.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from dashboards import signin
from dashboards.queries import controls as controls_queries
from dashboards.sources import floor_to

ALL_TENANTS = "All tenants"
PRESETS: dict[str, timedelta] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}
CUSTOM = "Custom range"
RANGE_SLUGS: dict[str, str] = {
    "15m": "Last 15 minutes",
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "custom": CUSTOM,
}
"""The ``range`` query parameter's values and the picker's labels."""
DEFAULT_RANGE = "Last hour"
_FILTERS_KEY = "_filters"
_KEPT_KEY = "_filters_kept"  # the last picks, kept while a page does not draw the range picker


@dataclass(frozen=True)
class Filters:
    """What the user picked: ``tenant`` is "" for all tenants; the range is ``[start, end)``."""

    tenant: str
    start: datetime
    end: datetime
    label: str

    @property
    def tenant_label(self) -> str:
        return self.tenant or ALL_TENANTS


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def draw_sidebar(show_range: bool = True) -> Filters:
    """Draw the tenant selector and (unless ``show_range`` is false) the time-range picker."""
    now = utc_now()
    kept = _kept(now.date())
    with st.sidebar:
        tenant = _tenant_selector(kept)
        end = floor_to(now, 60) + timedelta(minutes=1)
        if not show_range:
            result = Filters(tenant, end - PRESETS[DEFAULT_RANGE], end, DEFAULT_RANGE)
        else:
            for key in ("range", "range_from", "range_to"):
                st.session_state.setdefault(key, kept[key])
            label = st.selectbox("Time range", [*PRESETS, CUSTOM], key="range")
            kept["range"] = label
            if label == CUSTOM:
                first = st.date_input("From (UTC)", key="range_from")
                last = st.date_input("To (UTC, inclusive)", key="range_to")
                kept["range_from"], kept["range_to"] = first, last
                start = datetime.combine(first, time(), tzinfo=UTC)
                end = datetime.combine(last, time(), tzinfo=UTC) + timedelta(days=1)
                if end <= start:
                    st.warning("The range ends before it starts; showing one day.")
                    end = start + timedelta(days=1)
                result = Filters(tenant, start, end, f"{first} – {last}")
            else:
                result = Filters(tenant, end - PRESETS[label], end, label)
    kept["tenant"] = result.tenant
    st.session_state[_FILTERS_KEY] = result
    _write_url(kept)
    return result


def _kept(today: date) -> dict:
    """The picks to start from: this session's last ones, else the URL's, else the defaults."""
    kept = st.session_state.get(_KEPT_KEY)
    if not isinstance(kept, dict):
        kept = {"tenant": "", "range": DEFAULT_RANGE, "range_from": today - timedelta(days=1), "range_to": today}
        kept.update(from_query(st.query_params.to_dict()))
        st.session_state[_KEPT_KEY] = kept
    return kept


def from_query(params: dict[str, str]) -> dict:
    """The picks a URL's query asks for (tenant, range label, custom dates), leaving out what is not valid."""
    out: dict = {}
    if params.get("tenant"):
        out["tenant"] = params["tenant"]
    label = RANGE_SLUGS.get(params.get("range", ""))
    if label == CUSTOM:
        try:
            first, last = date.fromisoformat(params["from"]), date.fromisoformat(params["to"])
        except (KeyError, ValueError):
            return out
        out.update(range=CUSTOM, range_from=first, range_to=last)
    elif label:
        out["range"] = label
    return out


def to_query(tenant: str, label: str, first: date | None = None, last: date | None = None) -> dict[str, str]:
    """The URL query for these picks (the inverse of `from_query`)."""
    slug = next((k for k, v in RANGE_SLUGS.items() if v == label), "1h")
    out = {"tenant": tenant} if tenant else {}
    out["range"] = slug
    if label == CUSTOM and first and last:
        out.update({"from": first.isoformat(), "to": last.isoformat()})
    return out


def _write_url(kept: dict) -> None:
    """Put the picks in the address bar, replacing this module's parameters only."""
    wanted = to_query(kept["tenant"], kept["range"], kept["range_from"], kept["range_to"])
    current = st.query_params.to_dict()
    for key in ("tenant", "range", "from", "to"):
        if key in wanted and current.get(key) != wanted[key]:
            st.query_params[key] = wanted[key]
        elif key not in wanted and key in current:
            del st.query_params[key]


def _tenant_selector(kept: dict) -> str:
    """A tenant user's own tenant (fixed); operators and platform admins pick one or all."""
    user = signin.current_user()
    if user is not None and user.tenant_scoped:
        st.selectbox("Tenant", [user.tenant], key="tenant_fixed", disabled=True, help="Your tenant.")
        return user.tenant
    options = [ALL_TENANTS, *controls_queries.tenants()]
    if "tenant" not in st.session_state:
        st.session_state["tenant"] = kept["tenant"] if kept["tenant"] in options else ALL_TENANTS
    choice = st.selectbox("Tenant", options, key="tenant", help="Operators see all tenants together.")
    return "" if choice in (None, ALL_TENANTS) else choice


def filters() -> Filters:
    """The filters drawn by the entry point in this run."""
    found = st.session_state.get(_FILTERS_KEY)
    return found if isinstance(found, Filters) else draw_sidebar()
