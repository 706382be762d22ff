"""A whole DAG on "EC2": real ``dag.test()`` runs whose launch task starts emulated instances (moto) that
are real SSH hosts (sshd in network namespaces at the instances' private IPs), through Airflow connections
only: a ``sky`` connection naming an AWS connection that points at the emulator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, TeardownOperator
from airflow_provider_sky.sensors import SshReadySensor
from tests.e2e.conftest import DagRunResult, register
from tests.integration.aws.conftest import AwsBed

LOGICAL = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _connections(monkeypatch: pytest.MonkeyPatch, aws: AwsBed, ssh_key: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SKY_EMULATED_AWS",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIDEMULATOR",
                "password": "emulator-secret",
                "extra": {"region_name": "us-east-1", "endpoint_url": aws.endpoint},
            }
        ),
    )
    cloud = {
        k: v
        for k, v in aws.settings().items()
        if k not in ("boto3_session", "endpoint_url")  # the session comes from the AWS connection
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_SKY_ON_AWS",
        json.dumps(
            {
                "conn_type": "sky",
                "extra": {
                    "private_key": ssh_key,
                    "ssh_user": "root",
                    "cloud": "aws",
                    "cloud_conn_id": "sky_emulated_aws",
                    "aws": cloud,
                },
            }
        ),
    )


def _dag(dag_id: str, image_id: str, deferrable: bool) -> DAG:
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
        launch = SkyLaunchOperator(
            task_id="launch",
            cluster_name="ec2-{{ ds_nodash }}",
            cloud="aws",
            resources={"instance_type": "m5.large", "image_id": image_id},
            num_nodes=2,
            sky_conn_id="sky_on_aws",
            deferrable=deferrable,
            ssh_ready_timeout=60,
            launch_timeout=60,
        )
        ready = SshReadySensor(
            task_id="ready", cluster=launch.output, sky_conn_id="sky_on_aws", poke_interval=0.2, timeout=60
        )
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            sky_conn_id="sky_on_aws",
            run='echo "rank $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES in $(echo "$SKYPILOT_CLUSTER_INFO")"',
            deferrable=deferrable,
            poll_interval=0.2,
        )
        down = TeardownOperator(task_id="down", cluster=launch.output, sky_conn_id="sky_on_aws")
        launch >> ready >> work >> down
        down.as_teardown(setups=launch)
    return dag


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_dag_on_emulated_ec2(
    deferrable: bool,
    aws: AwsBed,
    ssh_key: str,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws.require_hosts()
    _connections(monkeypatch, aws, ssh_key)
    dag = _dag(f"ec2_{'deferrable' if deferrable else 'blocking'}", aws.image_id, deferrable)
    register(dag)
    result = DagRunResult(dag.test(logical_date=LOGICAL))

    assert result.states == {t: "success" for t in ("launch", "ready", "work", "down")}, result.states
    handle: dict[str, Any] = result.xcom("launch")
    assert handle["cloud"] == "aws" and handle["cluster_name"] == "ec2-20260501"
    assert len(handle["nodes"]) == 2 and all(n["host_key"] for n in result.xcom("ready")["nodes"])
    link = result.xcom("launch", "sky_ec2_console_link")
    assert link.endswith("#Instances:tag:sky-cluster-name=ec2-20260501") and handle["region"] in link
    job = result.xcom("work")
    assert job["state"] == "SUCCEEDED"
    # The instances carried the task's identity, and the teardown terminated every one of them.
    ec2 = aws.ec2(handle["region"])
    described = ec2.describe_instances(InstanceIds=[n["node_id"] for n in handle["nodes"]])
    instances = [i for r in described["Reservations"] for i in r["Instances"]]
    tags = {t["Key"]: t["Value"] for t in instances[0]["Tags"]}
    assert tags["airflow-dag-id"] == dag.dag_id and tags["airflow-task-id"] == "launch"
    assert {i["State"]["Name"] for i in instances} == {"terminated"}
    assert aws.live() == []


def _trigger_events(trigger: Any) -> list[dict[str, Any]]:
    import asyncio

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_launch_trigger_round_trips_and_reports_instances_ending_while_starting(
    aws: AwsBed, ssh_key: str, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger serialises to JSON types only; instances that end while starting give an
    ``interrupted`` event naming the zone, and the attempt's instances are terminated."""
    from airflow_provider_sky.core.resources import Resources
    from airflow_provider_sky.hooks.sky import SkyHook
    from airflow_provider_sky.triggers.aws_launch import AwsLaunchTrigger

    _connections(monkeypatch, aws, ssh_key)
    cloud = SkyHook("sky_on_aws").get_cloud("aws")
    ticket = cloud.begin_launch("gone", Resources(instance_type="m5.large", image_id=aws.image_id), 1)
    trigger = AwsLaunchTrigger(ticket.to_dict(), "sky_on_aws", deadline=None, poll_interval=0.05, resume={"x": 1})
    path, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert path == "airflow_provider_sky.triggers.aws_launch.AwsLaunchTrigger"
    aws.ec2(ticket.region).terminate_instances(InstanceIds=list(ticket.instance_ids))
    events = _trigger_events(AwsLaunchTrigger(**kwargs))
    assert len(events) == 1 and events[0]["status"] == "interrupted", events
    assert events[0]["zone"] == ticket.zone and events[0]["resume"] == {"x": 1}
    assert aws.live() == []
