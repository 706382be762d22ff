"""Whole lifecycle DAGs on the local cloud: launch -> ready -> sync -> exec -> sync -> teardown."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, StorageSyncOperator, TeardownOperator
from airflow_provider_sky.sensors import SshReadySensor
from tests.e2e.conftest import local_clusters

LOGICAL = dt.datetime(2026, 3, 14, tzinfo=dt.UTC)


def lifecycle_dag(dag_id: str, data: Path, out: Path, deferrable: bool) -> DAG:
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
        launch = SkyLaunchOperator(
            task_id="launch",
            cluster_name="t-{{ ds_nodash }}",
            num_nodes=2,
            resources={"cpus": "1+"},
            deferrable=deferrable,
        )
        ready = SshReadySensor(task_id="ready", cluster=launch.output, poke_interval=0.2, deferrable=deferrable)
        sync_in = StorageSyncOperator(
            task_id="sync_in", source=str(data), destination="cluster:~/data", cluster=launch.output
        )
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            setup="echo setting up",
            run=(
                'for i in 1 2 3; do echo "line $i of rank $SKYPILOT_NODE_RANK"; sleep 0.5; done\n'
                "mkdir -p ~/out && cat ~/data/in.txt > ~/out/rank-$SKYPILOT_NODE_RANK.txt && "
                'echo "$GREETING $SKYPILOT_NODE_RANK/$SKYPILOT_NUM_NODES" >> ~/out/rank-$SKYPILOT_NODE_RANK.txt'
            ),
            envs={"GREETING": "hello {{ ds }}"},
            deferrable=deferrable,
            poll_interval=0.2,
            log_interval=0.3,
        )
        sync_out = StorageSyncOperator(
            task_id="sync_out", source="cluster:~/out", destination=str(out), cluster=launch.output
        )

        @task
        def report(handle: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
            return {"cluster": handle["cluster_name"], "nodes": len(handle["nodes"]), "state": job["state"]}

        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> ready >> sync_in >> work >> sync_out >> report(launch.output, work.output) >> down  # type: ignore[arg-type]
        down.as_teardown(setups=launch)
    return dag


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_lifecycle(deferrable: bool, run_dag, sky_home: Path, tmp_path: Path, capfd, caplog) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("payload\n")
    out = tmp_path / "out"
    result = run_dag(lifecycle_dag(f"lifecycle_{deferrable}", data, out, deferrable), logical_date=LOGICAL)

    assert result.states == {
        t: "success" for t in ("launch", "ready", "sync_in", "work", "sync_out", "report", "down")
    }, result.states
    assert result.state == "success"
    handle = result.xcom("launch")
    assert handle["cluster_name"] == "t-20260314" and handle["cloud"] == "local" and len(handle["nodes"]) == 2
    assert result.xcom("ready")["cluster_name"] == "t-20260314"
    assert result.xcom("report") == {"cluster": "t-20260314", "nodes": 2, "state": "SUCCEEDED"}
    for rank in (0, 1):
        assert (out / f"node-{rank}" / f"rank-{rank}.txt").read_text() == f"payload\nhello 2026-03-14 {rank}/2\n"
    logs = capfd.readouterr()
    text = logs.out + logs.err
    for rank in (0, 1):
        assert f"(node {rank}) line 3 of rank {rank}" in text
    triggers_run = (text + caplog.text).count("[DAG TEST] running trigger in line")
    # Deferrable: the launch's SSH wait, then the job at least twice (log lines handed back, then the end).
    assert triggers_run >= 3 if deferrable else triggers_run == 0, triggers_run
    assert local_clusters(sky_home) == []
    assert json.loads(json.dumps(handle)) == handle


def test_mapped_exec_gives_each_map_index_its_own_job(run_dag, sky_home: Path) -> None:
    with DAG("mapped_exec", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="mapped-{{ ds_nodash }}")
        work = SkyExecOperator.partial(task_id="work", cluster=launch.output, poll_interval=0.2).expand(
            run=["echo shard 0", "echo shard 1", "echo shard 2"]
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.state == "success", result.states
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(run_id=result.dr.run_id, task_id="work", key="sky_job_id").all()
        job_ids = {row.map_index: XComModel.deserialize_value(row) for row in rows}
    assert sorted(job_ids) == [0, 1, 2] and len(set(job_ids.values())) == 3
    assert local_clusters(sky_home) == []


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_every_line_of_a_large_log_reaches_the_task_log(deferrable: bool, run_dag, sky_home: Path, capfd) -> None:
    with DAG(f"large_log_{deferrable}", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="chatty-{{ ds_nodash }}")
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            # Far more output than one read takes, all written before the first poll sees the job end.
            run="seq 1 3000 | sed 's/^/row /'; printf 'last line without newline'",
            deferrable=deferrable,
            poll_interval=0.2,
        )
        work.log_read_bytes = 2048
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    text = capfd.readouterr().out
    rows = re.findall(r"\(node 0\) row (\d+) ", text)
    assert [int(r) for r in rows] == list(range(1, 3001))
    assert "(node 0) last line without newline" in text
