"""Keep pandas out of the flow's process: ~1.3 s of start-up CPU for a library the flow never uses.

pyarrow imports pandas on its own, to recognise pandas objects among the values it converts: its
pandas shim on the first ``pa.array`` of a process, and its C++ core whenever it infers a type from
Python values or converts a ``ChunkedArray`` to numpy (``InitPandasStaticData``, retried on every
call until pandas imports). Nothing in `flows` hands pyarrow a pandas object, so the flow's process
(``python -m bytewax.run flows.dataflow:flow``, see `flows.dataflow`) refuses the import instead:
pyarrow then takes "pandas is not installed", a case it supports, and converts as before.

Only the flow's own process does this (`keep_pandas_out` is called by ``flows.dataflow:flow``, not
by `flows.dataflow.get_flow`), so a test or a notebook that builds the flow in-process keeps pandas.
"""

import importlib.abc
import sys
from typing import Any


class _NoPandas(importlib.abc.MetaPathFinder):
    """An import finder, first on ``sys.meta_path``, that refuses pandas.

    (``sys.modules["pandas"] = None``, the usual way, does not do: pyarrow's compiled shim takes the
    None for the module and fails on it.)
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"{fullname} is kept out of the flow's process (flows.no_pandas)", name=fullname)
        return None


def keep_pandas_out() -> bool:
    """Refuse ``import pandas`` from now on in this process; False (and nothing done) if it is already imported."""
    if "pandas" in sys.modules:
        return False
    if not any(isinstance(finder, _NoPandas) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())
    return True
