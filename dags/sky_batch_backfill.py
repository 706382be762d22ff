"""sky_batch_backfill: a daily batch job, one cluster per run named from the logical date.

``catchup=True`` over three days: the scheduler, or
``airflow backfill create --dag-id sky_batch_backfill --from-date 2026-01-01 --to-date 2026-01-03``,
runs one cluster ``batch-YYYYMMDD`` per day, each torn down by its own run.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, TeardownOperator
from airflow_provider_sky.sensors import SshReadySensor

# A run triggered by hand may have no logical date in Airflow 3: it then takes its run_after date.
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
DAY_NODASH = "{{ (dag_run.logical_date or dag_run.run_after) | ds_nodash }}"

with DAG(
    dag_id="sky_batch_backfill",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    end_date=datetime(2026, 1, 3),
    catchup=True,
    max_active_runs=2,
    tags=["sky", "example"],
    doc_md=__doc__,
) as dag:
    launch = SkyLaunchOperator(task_id="launch", cluster_name=f"batch-{DAY_NODASH}", cloud="local", num_nodes=1)
    ready = SshReadySensor(task_id="ssh_ready", cluster=launch.output, poke_interval=0.5, timeout=120)
    batch = SkyExecOperator(
        task_id="batch",
        cluster=launch.output,
        run=(
            'echo "processing partition $PARTITION on $(hostname)"\n'
            "seq 1 1000 | awk '{s += $1} END {print \"checksum\", s}'"
        ),
        envs={"PARTITION": DAY},
    )
    down = TeardownOperator(task_id="teardown", cluster=launch.output)
    launch >> ready >> batch >> down
    down.as_teardown(setups=launch)
