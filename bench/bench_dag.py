"""Wall time of ``airflow dags test sky_train_local`` against the work inside it: the provider's overhead.

1. Runs ``airflow dags test sky_train_local`` in a fresh AIRFLOW_HOME (SQLite) and reads each task's
   duration from the metadata DB.
2. Does the same work with the provisioning core alone, in one process, with no Airflow: launch 2
   nodes until SSH-ready, upload the dataset, upload the workdir and run the training job to its end,
   download the results, tear down.
3. Prints, per task, Airflow's task duration, the core's time for the same step, and the difference.

Run: ``.venv/bin/python bench/bench_dag.py``
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_dag(tmp: Path) -> tuple[float, dict[str, float], Path, str]:
    home = tmp / "airflow-home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "SKY_DEMO_RESULTS": str(tmp / "results"),
        "SKY_AIRFLOW_HOME": str(tmp / "sky-dag"),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True)
    started = time.perf_counter()
    result = subprocess.run([airflow, "dags", "test", "sky_train_local"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit("bench: the DAG run failed")
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = 'sky_train_local'"
        ).fetchall()
    durations = {
        task: (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        for task, start, end in rows
        if start and end
    }
    first = min((start, task) for task, start, _end in rows if start)[1]
    dataset = next((tmp / "results").glob("*/dataset"))
    return wall, durations, dataset, first


def run_core(tmp: Path, dataset: Path) -> dict[str, float]:
    os.environ["SKY_AIRFLOW_HOME"] = str(tmp / "sky-core")
    from airflow_provider_sky.core.cluster import Cluster

    steps: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        value = fn()
        steps[name] = time.perf_counter() - start
        return value

    cluster = timed("launch", lambda: Cluster.launch("bench-core", "local", num_nodes=2))
    try:
        timed("ssh_ready", lambda: cluster.wait_ssh_ready(timeout=60))
        timed("sync_data_in", lambda: cluster.upload(str(dataset), "~/data"))

        def job() -> None:
            job_id = cluster.submit(
                run='"$SKY_PYTHON" train.py',
                envs={"SKY_PYTHON": sys.executable, "EPOCHS": "300", "LEARNING_RATE": "0.5"},
                workdir=str(ROOT / "dags" / "sky_train"),
            )
            status = cluster.wait_job(job_id, poll_interval=1.0)
            assert status.state.value == "SUCCEEDED", status

        timed("train", job)
        timed(
            "sync_results_out",
            lambda: [cluster.download("~/results", str(tmp / "core-out" / f"node-{r}"), node=r) for r in (0, 1)],
        )
    finally:
        timed("teardown", cluster.down)
    return steps


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sky-bench-dag-") as name:
        tmp = Path(name)
        wall, durations, dataset, first = run_dag(tmp)
        core = run_core(tmp, dataset)
    work_tasks = ["launch", "ssh_ready", "sync_data_in", "train", "sync_results_out", "teardown"]
    print(f"airflow dags test sky_train_local: wall {wall:.2f} s")
    print(f"{'task':<18}{'task run (s)':>14}{'core alone (s)':>16}{'overhead (s)':>14}")
    for task in [*work_tasks, "prepare_data", "report"]:
        if task not in durations:
            continue
        inside = core.get(task)
        shown = f"{inside:>16.2f}{durations[task] - inside:>14.2f}" if inside is not None else f"{'-':>16}{'-':>14}"
        note = "  <- first task run: carries the in-process task runner's one-off start-up" if task == first else ""
        print(f"{task:<18}{durations[task]:>14.2f}{shown}{note}")
    task_sum = sum(durations.values())
    core_sum = sum(core.values())
    print(f"{'sum of tasks':<18}{task_sum:>14.2f}{core_sum:>16.2f}{task_sum - core_sum:>14.2f}")
    own = durations.get("prepare_data", 0) + durations.get("report", 0)
    print(
        f"wall time {wall:.2f} s = core work {core_sum:.2f} s + provider/task overhead "
        f"{sum(durations[t] for t in work_tasks if t in durations) - core_sum:.2f} s "
        f"+ Airflow outside tasks (CLI start-up, DAG parsing, scheduling loop) {wall - task_sum:.2f} s "
        f"+ the DAG's own Python tasks (prepare_data, report) {own:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
