"""sky_train_local: a scheduled training run on a 2-node cluster of the local cloud.

prepare data ─┐
launch ─► ssh ready ─► sync data in ─► train (NumPy, sharded by SKYPILOT_NODE_RANK) ─► sync results out ─► report
   └──────────────────────────── teardown (a teardown task: runs even when training fails) ◄───────────────┘

Results land in ``<repo>/results/<logical date, as YYYYMMDDTHHMMSS>/`` (override with ``SKY_DEMO_RESULTS``): each node's
``model.json`` and ``metrics.json`` under ``node-<rank>/``, and the report's ``summary.json``.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, StorageSyncOperator, TeardownOperator
from airflow_provider_sky.sensors import SshReadySensor

RESULTS = Path(os.environ.get("SKY_DEMO_RESULTS") or Path(__file__).resolve().parent.parent / "results")
# Manual runs in Airflow 3 may have no logical date (ts_nodash is then undefined): fall back to run_after.
STAMP = "{{ (dag_run.logical_date or dag_run.run_after) | ts_nodash }}"
RUN_DIR = str(RESULTS / STAMP)

with DAG(
    dag_id="sky_train_local",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["sky", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def prepare_data(run_dir: str, rows: int = 4000, seed: int = 7) -> str:
        """A synthetic, linearly separable-ish binary classification set (train and test CSVs)."""
        import numpy as np

        rng = np.random.default_rng(seed)
        true_w = np.array([1.5, -2.0, 0.7, 0.0])
        data_dir = Path(run_dir) / "dataset"
        data_dir.mkdir(parents=True, exist_ok=True)
        for name, count in (("train", rows), ("test", rows // 4)):
            x = rng.normal(size=(count, len(true_w)))
            y = ((x @ true_w + rng.normal(scale=0.5, size=count)) > 0).astype(int)
            header = ",".join(f"x{i}" for i in range(len(true_w))) + ",y"
            np.savetxt(data_dir / f"{name}.csv", np.column_stack([x, y]), delimiter=",", header=header, comments="")
        return str(data_dir)

    dataset = prepare_data(RUN_DIR)

    launch = SkyLaunchOperator(task_id="launch", cluster_name=f"sky-train-{STAMP}", cloud="local", num_nodes=2)
    ready = SshReadySensor(task_id="ssh_ready", cluster=launch.output, poke_interval=0.5, timeout=120)
    sync_in = StorageSyncOperator(
        task_id="sync_data_in", source=dataset, destination="cluster:~/data", cluster=launch.output
    )
    train = SkyExecOperator(
        task_id="train",
        cluster=launch.output,
        workdir="sky_train",
        # The local cloud's nodes are this machine, so the interpreter running Airflow (with NumPy) is
        # there too; on other clouds a setup step would install NumPy instead.
        run='"$SKY_PYTHON" train.py',
        envs={"SKY_PYTHON": sys.executable, "EPOCHS": "300", "LEARNING_RATE": "0.5"},
    )
    sync_out = StorageSyncOperator(
        task_id="sync_results_out", source="cluster:~/results", destination=RUN_DIR, cluster=launch.output
    )

    @task
    def report(run_dir: str) -> dict:
        """Combine the nodes' metrics and models (a row-weighted average) and write summary.json."""
        import json

        import numpy as np

        root = Path(run_dir)
        nodes = sorted(root.glob("node-*/metrics.json"))
        if not nodes:
            raise FileNotFoundError(f"no node metrics under {root}")
        metrics = [json.loads(p.read_text()) for p in nodes]
        models = [json.loads((p.parent / "model.json").read_text()) for p in nodes]
        weights = np.array([m["train_rows"] for m in metrics], dtype=float)
        avg_w = np.average([m["weights"] for m in models], axis=0, weights=weights)
        avg_b = float(np.average([m["bias"] for m in models], weights=weights))
        test = np.loadtxt(root / "dataset" / "test.csv", delimiter=",", skiprows=1)
        accuracy = float(np.mean(((test[:, :-1] @ avg_w + avg_b) > 0) == (test[:, -1] > 0.5)))
        summary = {
            "results_dir": str(root),
            "nodes": metrics,
            "averaged_model": {"weights": avg_w.round(6).tolist(), "bias": round(avg_b, 6)},
            "averaged_test_accuracy": round(accuracy, 6),
        }
        (root / "summary.json").write_text(json.dumps(summary, indent=1))
        for m in metrics:
            print(f"node {m['rank']}: {m['train_rows']} rows, loss {m['final_loss']}, accuracy {m['test_accuracy']}")
        print(f"averaged model: test accuracy {accuracy:.3f}; results in {root}")
        return summary

    down = TeardownOperator(task_id="teardown", cluster=launch.output)

    launch >> ready >> sync_in
    sync_in >> train >> sync_out >> report(RUN_DIR) >> down
    down.as_teardown(setups=launch)
