"""``file_mounts`` with ``s3://`` sources reach every node (moto S3, real local-cloud sshd nodes)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk import DAG

from airflow_provider_sky.core import Cluster, SkyConfigError, TaskSpec
from airflow_provider_sky.core.jobs import JobState
from tests.e2e.conftest import DagRunResult, register
from tests.integration.aws.test_s3_sync import Bucket
from tests.testbed import MotoServer


@pytest.fixture
def bucket(moto_server: MotoServer) -> Iterator[Bucket]:
    b = Bucket(moto_server)
    for shard in range(3):
        b.client.put_object(Bucket=b.name, Key=f"data/shard-{shard}.txt", Body=f"shard {shard}\n")
    yield b
    b.close()


def test_task_file_mounts_from_s3_and_local(sky_home: Path, bucket: Bucket, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "lr.txt").write_text("0.1\n")
    spec = TaskSpec.from_yaml(
        {
            "file_mounts": {"~/data": bucket.url("data"), "~/cfg": str(config)},
            "run": "cat ~/data/shard-$SKYPILOT_NODE_RANK.txt ~/cfg/lr.txt",
        }
    )
    cluster = Cluster.launch("mounts", num_nodes=2)
    try:
        with pytest.raises(SkyConfigError, match="needs S3 credentials"):
            cluster.sync_file_mounts(spec.file_mounts)
        options = {"session": bucket.session, "endpoint_url": bucket.endpoint}
        job = cluster.submit(run=spec.run, file_mounts=spec.file_mounts, storage_options=options)
        lines: list[str] = []
        assert cluster.wait_job(job, on_line=lines.append, timeout=60).state is JobState.SUCCEEDED
        assert sorted(lines) == ["(node 0) 0.1", "(node 0) shard 0", "(node 1) 0.1", "(node 1) shard 1"]
        assert cluster.run("ls ~/data").stdout == ["shard-0.txt\nshard-1.txt\nshard-2.txt\n"] * 2
        with pytest.raises(SkyConfigError, match="not supported yet; accepted: a local path or s3://"):
            cluster.sync_file_mounts({"~/g": "gs://bucket/x"})
    finally:
        cluster.down()


def test_exec_operator_mounts_s3_through_the_aws_connection(
    sky_home: Path, bucket: Bucket, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator builds the S3 session from the AWS connection the sky connection names."""
    from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, TeardownOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_MOUNTS_AWS",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIDMOUNTS",
                "password": "mounts-secret",
                "extra": {"region_name": "us-east-1", "endpoint_url": bucket.endpoint},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SKY_MOUNTS", json.dumps({"conn_type": "sky", "extra": {"cloud_conn_id": "mounts_aws"}})
    )
    with DAG("s3_mounts", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="mounts-op", num_nodes=2, sky_conn_id="sky_mounts")
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            sky_conn_id="sky_mounts",
            task={"file_mounts": {"~/in": bucket.url("data")}, "run": "cat ~/in/shard-$SKYPILOT_NODE_RANK.txt"},
            poll_interval=0.2,
        )
        down = TeardownOperator(task_id="down", cluster=launch.output, sky_conn_id="sky_mounts")
        launch >> work >> down
        down.as_teardown(setups=launch)
    register(dag)
    result = DagRunResult(dag.test(logical_date=dt.datetime(2026, 5, 2, tzinfo=dt.UTC)))
    assert result.states == {"launch": "success", "work": "success", "down": "success"}, result.states
    assert result.xcom("work")["state"] == "SUCCEEDED"
