"""The Airflow side of AWS: a session from an Airflow AWS connection drives the core, and the console link."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_sky.core import Cluster
from tests.integration.aws.conftest import AwsBed


def test_session_from_an_airflow_aws_connection_launches(aws: AwsBed, ssh_key: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_sky.hooks.aws import aws_cloud_settings, aws_session_factory

    connection = {"conn_type": "aws", "login": "AKIDFROMCONNECTION", "password": "secret-from-connection",
                  "extra": {"region_name": "us-east-1", "endpoint_url": aws.endpoint}}
    monkeypatch.setenv("AIRFLOW_CONN_SKY_TEST_AWS", json.dumps(connection))
    session = aws_session_factory("sky_test_aws")()
    frozen = session.get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, session.region_name) == (
        "AKIDFROMCONNECTION", "secret-from-connection", "us-east-1"
    )

    class Ti:
        dag_id, run_id, task_id, try_number = "dag", "run", "launch", 2

    settings: dict[str, Any] = aws_cloud_settings({"ti": Ti()}, "sky_test_aws", **{
        k: v for k, v in aws.settings().items() if k not in ("boto3_session", "endpoint_url")
    })
    assert settings["endpoint_url"] == aws.endpoint and settings["airflow_tags"]["try_number"] == 2
    cluster = Cluster.launch("hooked", cloud="aws", resources={"instance_type": "m5.large", "image_id": aws.image_id},
                             ssh_private_key=ssh_key, ssh_user="root", **settings)
    try:
        reply = aws.ec2().describe_instances(InstanceIds=[cluster.nodes[0].node_id])
        tags = {t["Key"]: t["Value"] for t in reply["Reservations"][0]["Instances"][0]["Tags"]}
        assert tags["airflow-try-number"] == "2" and tags["airflow-dag-id"] == "dag"
    finally:
        cluster.down()


def test_ec2_console_link() -> None:
    from airflow_provider_sky.links.ec2 import ec2_console_url

    url = ec2_console_url({"cloud": "aws", "region": "eu-west-1", "cluster_name": "train-1"})
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#Instances:tag:sky-cluster-name=train-1"
    )
    assert ec2_console_url({"cloud": "local", "cluster_name": "x"}) == ""
