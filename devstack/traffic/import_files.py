"""Event tables to import (tests and ``benchmarks/bulk_import.py``): flat or nested ``data``, few or many users.

``flat``: every ``data`` field is a column of its own (``user_id``, ``action``, ``latency_ms``,
``status_code``, ``country``). ``nested``: one ``data`` struct column holding those and a
``metadata`` struct (``device``, ``version``, ``region``), two levels deep.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa

Shape = Literal["flat", "nested"]
_ACTIONS = np.array(["click", "view", "purchase", "scroll", "signup"])
_COUNTRIES = np.array(["de", "fr", "us", "jp", "br", "in"])
_DEVICES = np.array(["ios", "android", "web"])


def event_table(rows: int, now_ms: int, *, shape: Shape = "flat", users: int = 1000, seed: int = 0) -> pa.Table:
    """``rows`` valid events from the last hour before ``now_ms``, without ids (the import names them)."""
    rng = np.random.default_rng(seed)
    user = pa.array(np.char.add("u", rng.integers(0, users, rows).astype(str)))
    fields = {
        "user_id": user,
        "action": pa.array(rng.choice(_ACTIONS, rows)),
        "latency_ms": pa.array(np.round(rng.exponential(80.0, rows), 3)),
        "status_code": pa.array(rng.choice([200, 200, 200, 404, 500], rows)),
        "country": pa.array(rng.choice(_COUNTRIES, rows)),
    }
    envelope = {
        "timestamp": pa.array(np.sort(rng.integers(now_ms - 3_600_000, now_ms, rows))),
        "type": pa.array(rng.choice(np.array(["user_action", "page_view", "error"]), rows, p=[0.6, 0.35, 0.05])),
        "source": pa.array(rng.choice(np.array(["web_app", "ios", "android"]), rows)),
    }
    if shape == "flat":
        return pa.table({**envelope, **fields})
    metadata = pa.StructArray.from_arrays(
        [
            pa.array(rng.choice(_DEVICES, rows)),
            pa.array(rng.integers(1, 40, rows)),
            pa.array(np.char.add("eu-", rng.integers(1, 4, rows).astype(str))),
        ],
        names=["device", "version", "region"],
    )
    data = pa.StructArray.from_arrays([*fields.values(), metadata], names=[*fields, "metadata"])
    return pa.table({**envelope, "data": data})
