"""Compare two sets of window rows (stream vs batch) and report every difference."""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventpulse.aggregation.spec import KEY_COLUMNS, METRICS, Metric

Row = Mapping[str, Any]
Key = tuple[Any, ...]


@dataclass(frozen=True)
class Difference:
    """One disagreement: a metric out of tolerance, or a window row only one side has."""

    key: Key
    metric: str  # a metric name, or "<missing>" when a side lacks the row
    left: Any
    right: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": dict(zip(KEY_COLUMNS, (str(k) for k in self.key), strict=True)),
            "metric": self.metric,
            "left": self.left,
            "right": self.right,
        }


def _within(m: Metric, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, float) and math.isnan(left):
        return isinstance(right, float) and math.isnan(right)
    if m.rel_tolerance == 0:
        return left == right
    return abs(left - right) <= m.rel_tolerance * max(abs(left), abs(right)) + 1e-9


def _index(rows: Iterable[Row]) -> dict[Key, Row]:
    return {tuple(row[c] for c in KEY_COLUMNS): row for row in rows}


def compare_rows(left: Iterable[Row], right: Iterable[Row], metrics: Sequence[Metric] = METRICS) -> list[Difference]:
    """Every difference between ``left`` and ``right`` (e.g. stream and batch rows), key by key.

    Counts must match exactly; metrics with a ``rel_tolerance`` (quantiles, sums) may differ
    by that much relative to the larger value.
    """
    a, b = _index(left), _index(right)
    differences = [Difference(k, "<missing>", None, "present") for k in b.keys() - a.keys()]
    differences += [Difference(k, "<missing>", "present", None) for k in a.keys() - b.keys()]
    for key in a.keys() & b.keys():
        for m in metrics:
            if not _within(m, a[key][m.name], b[key][m.name]):
                differences.append(Difference(key, m.name, a[key][m.name], b[key][m.name]))
    return sorted(differences, key=lambda d: (tuple(str(k) for k in d.key), d.metric))
