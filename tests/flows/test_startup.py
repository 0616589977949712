"""The flow starts without pandas (issue 15 item 4): pyarrow would import it on its own (~1.3 s of CPU)."""

import re
import subprocess
import sys

import orjson
import pytest

from eventpulse.config.broker import BrokerSettings
from tests.support.pipeline import REPO, produce, run_flow_until_drained

pytestmark = pytest.mark.integration

# A real import of pandas loads its submodules (a refused one is logged too, as ``pandas`` alone).
PANDAS_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s+pandas\.", re.MULTILINE)


def _python(*argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_importing_the_flow_module_does_not_import_pandas() -> None:
    out = _python("-c", "import sys, flows.dataflow; print('pandas' in sys.modules, 'pyarrow' in sys.modules)")
    assert out.split() == ["False", "True"]


def test_the_flows_process_runs_its_first_batch_without_pandas() -> None:
    kept_out = orjson.loads(_python("-m", "tests.support.flow_startup"))
    assert kept_out["raw_rows"] == 991 and kept_out["pandas"] is False  # 1,000 generated, 9 invalid
    # The negative control: left to pyarrow, the first batch imports pandas.
    left = orjson.loads(_python("-m", "tests.support.flow_startup", "--load-pandas"))
    assert left["raw_rows"] == 991 and left["pandas"] is True


def test_the_real_flow_process_never_imports_pandas(broker_settings: BrokerSettings, warehouse, tmp_path) -> None:
    """``python -m bytewax.run flows.dataflow:flow`` over the real broker and warehouse, every import logged."""
    produce(broker_settings.bootstrap, broker_settings.events_topic, [(b"acme:u1", b'{"bad": 1}')])
    log = tmp_path / "flow.log"
    run_flow_until_drained(broker_settings, warehouse, extra_env={"PYTHONPROFILEIMPORTTIME": "1"}, log=log)
    imports = log.read_text()
    assert re.search(r"\|\s+pyarrow\.compute$", imports, re.MULTILINE)  # the log does list the flow's imports
    assert not PANDAS_IMPORTED.search(imports)
