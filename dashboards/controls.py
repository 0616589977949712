"""The sidebar controls every page shares: tenant and time range.

A tenant analyst's or tenant admin's tenant is fixed to their own (from the signed-in session,
never the URL); operators and platform admins pick any tenant or all of them.

The entry point draws them once per run (so they keep their values across pages) and the pages
read the result with `filters()`. Times are UTC and rounded, so repeated runs within the same
minute (or second, on live pages) hit the query cache.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

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
_FILTERS_KEY = "_filters"


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
    with st.sidebar:
        tenant = _tenant_selector()
        now = utc_now()
        end = floor_to(now, 60) + timedelta(minutes=1)
        if not show_range:
            result = Filters(tenant, end - PRESETS["Last hour"], end, "Last hour")
        else:
            label = st.selectbox("Time range", [*PRESETS, CUSTOM], index=1, key="range")
            if label == CUSTOM:
                today = now.date()
                first = st.date_input("From (UTC)", today - timedelta(days=1), key="range_from")
                last = st.date_input("To (UTC, inclusive)", today, key="range_to")
                start = datetime.combine(first, time(), tzinfo=UTC)
                end = datetime.combine(last, time(), tzinfo=UTC) + timedelta(days=1)
                if end <= start:
                    st.warning("The range ends before it starts; showing one day.")
                    end = start + timedelta(days=1)
                result = Filters(tenant, start, end, f"{first} – {last}")
            else:
                result = Filters(tenant, end - PRESETS[label], end, label)
    st.session_state[_FILTERS_KEY] = result
    return result


def _tenant_selector() -> str:
    """A tenant user's own tenant (fixed); operators and platform admins pick one or all."""
    user = signin.current_user()
    if user is not None and user.tenant_scoped:
        st.selectbox("Tenant", [user.tenant], key="tenant_fixed", disabled=True, help="Your tenant.")
        return user.tenant
    options = [ALL_TENANTS, *controls_queries.tenants()]
    choice = st.selectbox("Tenant", options, key="tenant", help="Operators see all tenants together.")
    return "" if choice in (None, ALL_TENANTS) else choice


def filters() -> Filters:
    """The filters drawn by the entry point in this run."""
    found = st.session_state.get(_FILTERS_KEY)
    return found if isinstance(found, Filters) else draw_sidebar()
