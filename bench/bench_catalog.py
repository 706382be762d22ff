"""Catalog and optimizer benchmarks: prints the three figures of the catalog issue.

    .venv/bin/python bench/bench_catalog.py [--runs 7] [--plans 3000]

1. Catalog load, cold process, all clouds: a fresh interpreter per run times
   importing the catalog package and loading aws, gcp, azure and lambda (best
   of ``--runs``; interpreter start-up itself is reported separately).
2. One ``plan()`` after load, ``A100:8`` across all clouds: median of ``--plans`` calls.
3. ``sky-airflow cheapest --accelerators A100:8 --json``: whole-process wall time
   of the installed console script (best and median of ``--runs``).

Reference (SkyPilot 0.14.1 on the same snapshot and machine): 1.7 s import,
1.1 s to load the AWS catalog, about 1.4 ms per cheapest-instance query.
Goals: load < 100 ms, plan median < 0.1 ms, CLI < 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

_LOAD = """
import time
t0 = time.perf_counter()
from airflow_provider_sky.core import catalog
for cloud in catalog.CLOUDS:
    catalog.load(cloud)
print(time.perf_counter() - t0)
"""


def _fresh_env() -> dict[str, str]:
    # An empty state root: the packaged snapshot is what gets loaded.
    return {**os.environ, "SKY_AIRFLOW_HOME": tempfile.mkdtemp(prefix="sky-bench-")}


def bench_load(runs: int) -> tuple[float, float]:
    env = _fresh_env()
    loads, starts = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, env=env, check=True)
        loads.append(float(out.stdout))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        starts.append(time.perf_counter() - t0)
    return min(loads), min(starts)


def bench_plan(calls: int) -> tuple[float, int]:
    from airflow_provider_sky.core import catalog
    from airflow_provider_sky.core.optimizer import plan
    from airflow_provider_sky.core.resources import Accelerator, Resources

    os.environ["SKY_AIRFLOW_HOME"] = _fresh_env()["SKY_AIRFLOW_HOME"]
    for cloud in catalog.CLOUDS:
        catalog.load(cloud)
    request = Resources(accelerators=(Accelerator("A100", 8),))
    n = len(plan(request))  # the first call also builds per-catalog offer tables
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        plan(request)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def bench_cli(runs: int) -> tuple[float, float]:
    script = shutil.which("sky-airflow", path=os.path.dirname(sys.executable))
    if script is None:
        sys.exit("sky-airflow is not installed next to this interpreter: run .venv/bin/pip install -e .")
    env = _fresh_env()
    cmd = [script, "cheapest", "--accelerators", "A100:8", "--json"]
    subprocess.run(cmd, capture_output=True, check=True, env=env)  # warm the OS file cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--plans", type=int, default=3000)
    args = parser.parse_args()
    load, start = bench_load(args.runs)
    print(f"catalog load, cold process, all clouds: {load * 1000:.1f} ms "
          f"(best of {args.runs}; goal < 100 ms; interpreter start-up alone {start * 1000:.0f} ms)")
    median, n = bench_plan(args.plans)
    print(f"plan(A100:8) across all clouds, after load: median {median * 1e3:.3f} ms "
          f"({n} candidates, {args.plans} calls; goal < 0.1 ms)")
    best, med = bench_cli(args.runs)
    print(f"sky-airflow cheapest --accelerators A100:8 --json, whole process: best {best:.3f} s, "
          f"median {med:.3f} s (goal < 0.3 s)")


if __name__ == "__main__":
    main()
