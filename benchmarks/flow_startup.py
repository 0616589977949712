"""The flow's start-up with pandas kept out of its process, against pyarrow importing it, in one run.

    .venv/bin/python benchmarks/flow_startup.py [--rounds 7]

Each round starts two fresh processes, one after the other in alternating order, running
``tests/support/flow_startup.py``: interpreter start, ``import flows.dataflow``, `get_flow` on
Bytewax's testing source and sink, and one micro-batch of 1,000 generated events through every step
(no broker, no warehouse: only what the flow pays itself). ``kept out`` is the flow's process as it
runs (`flows.no_pandas`); ``baseline`` leaves pandas to pyarrow, as before. Reported: the process's
CPU time (user + system: what the flow pays, the least disturbed by other work on shared cores), wall
time from spawn to exit and the probe's own stages, median and range over the rounds, and the ratio of the
medians (kept out / baseline). The machine's load average is printed: the cores are shared.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARMS = {"kept out": [], "baseline": ["--load-pandas"]}


def _once(extra: list[str]) -> dict[str, float]:
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.flow_startup", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    report["wall_s"] = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for k in range(args.rounds):
        order = list(ARMS) if k % 2 == 0 else list(reversed(ARMS))
        for arm in order:
            results[arm].append(_once(ARMS[arm]))
    print(f"{args.rounds} rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    stages = ("cpu_s", "wall_s", "import_s", "build_s", "first_batch_s")
    print(f"{'':10}" + "".join(f"{stage:>20}" for stage in stages) + "   pandas imported")
    medians: dict[str, dict[str, float]] = {}
    for arm, runs in results.items():
        medians[arm] = {stage: statistics.median(r[stage] for r in runs) for stage in stages}
        cells = [f"{medians[arm][s]:.2f} ({min(r[s] for r in runs):.2f}-{max(r[s] for r in runs):.2f})" for s in stages]
        print(f"{arm:10}" + "".join(f"{cell:>20}" for cell in cells) + f"   {any(r['pandas'] for r in runs)}")
    ratios = [medians["kept out"][s] / medians["baseline"][s] for s in stages]
    print(f"{'ratio':10}" + "".join(f"{ratio:>20.2f}" for ratio in ratios))


if __name__ == "__main__":
    main()
