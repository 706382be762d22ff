"""Run the sky_train_local example DAG end to end on the local cloud and say where its results are.

Uses a project-local AIRFLOW_HOME (.airflow-home/, SQLite metadata DB) and the repository's dags/
folder; the cluster's state lives in .airflow-home/sky (SKY_AIRFLOW_HOME) unless that is set already.
Exits non-zero when the DAG run fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "sky_train_local"


def main() -> int:
    home = ROOT / ".airflow-home"
    results = ROOT / "results"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "SKY_DEMO_RESULTS": str(results),
    }
    env.setdefault("SKY_AIRFLOW_HOME", str(home / "sky"))
    airflow = str(Path(sys.executable).with_name("airflow"))
    home.mkdir(exist_ok=True)
    print(f"demo: AIRFLOW_HOME={home} (SQLite); migrating the metadata DB", flush=True)
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    if migrate.returncode != 0:
        sys.stderr.write(migrate.stdout[-3000:] + migrate.stderr[-3000:])
        print("demo: airflow db migrate failed", file=sys.stderr)
        return 1
    before = set(results.glob("*/summary.json")) if results.exists() else set()
    print(f"demo: airflow dags test {DAG_ID} (2-node local cluster; task logs follow)", flush=True)
    started = time.monotonic()
    run = subprocess.run([airflow, "dags", "test", DAG_ID], env=env, check=False)
    elapsed = time.monotonic() - started
    if run.returncode != 0:
        print(
            f"demo: the {DAG_ID} run failed after {elapsed:.1f}s (exit {run.returncode}); see the log above",
            file=sys.stderr,
        )
        return 1
    new = sorted(set(results.glob("*/summary.json")) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        print(f"demo: the run succeeded but wrote no summary under {results}", file=sys.stderr)
        return 1
    summary_path = new[-1]
    summary = json.loads(summary_path.read_text())
    run_dir = summary_path.parent
    print()
    print(f"demo: {DAG_ID} succeeded in {elapsed:.1f}s")
    for node in summary["nodes"]:
        print(
            f"  node {node['rank']}: {node['train_rows']} training rows, loss {node['final_loss']}, "
            f"test accuracy {node['test_accuracy']}"
        )
    print(f"  averaged model: test accuracy {summary['averaged_test_accuracy']}")
    print(f"demo: results in {run_dir}/")
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and path.parent.name != "dataset":
            print(f"  {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
