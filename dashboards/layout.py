"""Page layout shared by the pages: KPI tiles in rows narrow enough that no value is cut off."""

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

TILES_PER_ROW = 3
"""At 1280 px with the sidebar open a tile is ~260 px wide in rows of 3: room for ``1,234,567`` or
``1,234.5 ms`` at the metric's font size (six in a row cut them to ``1,01…``)."""


def tiles(count: int, per_row: int = TILES_PER_ROW) -> list[DeltaGenerator]:
    """``count`` KPI tiles, ``per_row`` to a row (the last row keeps the same tile width)."""
    out: list[DeltaGenerator] = []
    while len(out) < count:
        out.extend(st.columns(per_row)[: count - len(out)])
    return out
