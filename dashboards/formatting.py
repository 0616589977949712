"""How numbers are shown (tests format the warehouse's answer the same way to compare)."""

from datetime import datetime


def count(value: float | None) -> str:
    """A count with thousands separators (``12,345``)."""
    return "–" if value is None else f"{round(value):,}"


def rate(value: float | None) -> str:
    """Events per second with one decimal (``1,234.5``)."""
    return "–" if value is None else f"{value:,.1f}"


def percent(value: float | None) -> str:
    """A ratio as a percentage with two decimals (``1.25%``)."""
    return "–" if value is None else f"{value * 100:.2f}%"


def ms(value: float | None) -> str:
    """Milliseconds with one decimal (``41.3 ms``)."""
    return "–" if value is None else f"{value:,.1f} ms"


def size(value: float | None) -> str:
    """Bytes in binary units (``1.5 MiB``)."""
    if value is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def moment(value: datetime | None) -> str:
    """A UTC time to the second (``12:04:10``)."""
    return "–" if value is None else value.strftime("%H:%M:%S")


def delta_percent(current: float | None, previous: float | None) -> str | None:
    """Relative change for a metric's delta (None when there is nothing to compare)."""
    if current is None or not previous:
        return None
    return f"{(current - previous) / previous * 100:+.1f}%"
