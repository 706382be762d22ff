"""The AWS cloud against the moto EC2 emulator, with real sshd hosts behind the emulated instances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sky.core import Cluster, SkyConfigError
from airflow_provider_sky.core.clouds import get_cloud
from airflow_provider_sky.core.clouds.aws import (
    MANAGED_BY,
    TAG_CLUSTER,
    TAG_HOST_KEY,
    AwsCloud,
    LaunchFailedError,
    key_pair_name,
)
from airflow_provider_sky.core.clouds.base import ClusterStatus, SshCredentials
from airflow_provider_sky.core.errors import ClusterMismatchError
from airflow_provider_sky.core.keys import public_key_line
from tests.integration.aws.conftest import AwsBed, ec2_error, request_params

HERE = Path(__file__).parent


def resources(bed: AwsBed, **extra: Any) -> dict[str, Any]:
    return {"instance_type": "m5.large", "image_id": bed.image_id, **extra}


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def instances(bed: AwsBed, region: str, name: str) -> list[dict[str, Any]]:
    """The cluster's instances in this test's subnets (the emulator keeps earlier tests' terminated ones)."""
    filters = [
        {"Name": f"tag:{TAG_CLUSTER}", "Values": [name]},
        {"Name": "subnet-id", "Values": list(bed.subnets.values())},
    ]
    reply = bed.ec2(region).describe_instances(Filters=filters)
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def launch(bed: AwsBed, key: str, name: str = "c1", num_nodes: int = 2, **settings: Any) -> Cluster:
    res = settings.pop("resources", None) or resources(bed)
    return Cluster.launch(
        name, cloud="aws", resources=res, num_nodes=num_nodes, ssh_private_key=key, ssh_user="root",
        **bed.settings(**settings),
    )


def test_launch_ssh_job_and_teardown(aws: AwsBed, ssh_key: str, tmp_path: Path) -> None:
    aws.require_hosts()
    airflow_tags = {"dag_id": "d1", "run_id": "manual__1", "task_id": "launch", "try_number": 1}
    cluster = launch(aws, ssh_key, airflow_tags=airflow_tags, resources=resources(aws, ports=["8080"], disk_size=40))
    handle = cluster.handle
    assert handle.cloud == "aws" and handle.region == "us-east-1" and handle.num_nodes == 2
    assert all(node.host_key is None for node in handle.nodes)  # pinned at first contact, not before
    assert {n.ip for n in handle.nodes} <= {str(ip) for ip in aws.network.hosts()}

    found = instances(aws, "us-east-1", "c1")
    assert len(found) == 2
    for inst in found:
        tags = tags_of(inst)
        assert tags["managed-by"] == MANAGED_BY and tags[TAG_CLUSTER] == "c1"
        airflow = (tags["airflow-dag-id"], tags["airflow-run-id"], tags["airflow-task-id"])
        assert airflow == ("d1", "manual__1", "launch")
        assert tags["airflow-try-number"] == "1"
        assert inst["KeyName"] == key_pair_name(public_key_line(ssh_key))
    volumes = aws.ec2().describe_volumes(Filters=[{"Name": f"tag:{TAG_CLUSTER}", "Values": ["c1"]}])["Volumes"]
    assert volumes and all(v["Size"] == 40 for v in volumes)
    group = aws.ec2().describe_security_groups(Filters=[{"Name": "group-name", "Values": ["sky-airflow-c1"]}])
    ports = {(p["FromPort"], p["ToPort"]) for p in group["SecurityGroups"][0]["IpPermissions"]}
    assert ports == {(22, 22), (8080, 8080)}

    cluster.wait_ssh_ready(timeout=30)
    result = cluster.run("echo $SKY_AIRFLOW_NODE; hostname -I")
    assert result.ok and [out.split()[-1] for out in result.stdout] == [n.ip for n in handle.nodes]
    # The key seen at first contact is pinned in the handle and kept on the instance for later lookups.
    pinned = [n.host_key for n in cluster.nodes]
    assert all(pinned)
    assert sorted(tags_of(i).get(TAG_HOST_KEY) for i in instances(aws, "us-east-1", "c1")) == sorted(pinned)
    job = cluster.submit(run='echo "rank $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES"')
    status = cluster.wait_job(job, timeout=60, poll_interval=0.1)
    assert status.state.name == "SUCCEEDED"
    logs = cluster.tail_logs(job, flush=True).lines
    assert sorted(logs) == ["(node 0) rank 0 of 2", "(node 1) rank 1 of 2"]

    cluster.down()
    assert all(i["State"]["Name"] == "terminated" for i in instances(aws, "us-east-1", "c1"))
    assert not aws.ec2().describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["sky-airflow-c1"]}]
    )["SecurityGroups"]
    assert cluster.status() is None
    cluster.down()  # a cluster that is gone is success


def test_relaunch_stop_start_and_lookups_by_tag(aws: AwsBed, ssh_key: str) -> None:
    aws.require_hosts()
    first = launch(aws, ssh_key)
    ids = [n.node_id for n in first.nodes]
    first.wait_ssh_ready(timeout=30)
    pinned = [n.host_key for n in first.nodes]

    again = launch(aws, ssh_key)  # idempotent by name: the same instances
    assert [n.node_id for n in again.nodes] == ids
    assert [n.host_key for n in again.nodes] == pinned  # read back from the instances' tags

    # Without any handle (XCom lost) and without knowing the region, the tags still find it.
    cloud = get_cloud("aws", SshCredentials(ssh_key, "root"), boto3_session=aws.session, endpoint_url=aws.endpoint,
                      use_internal_ips=True)
    assert cloud.status("c1") is ClusterStatus.UP
    assert [(r.name, r.status, r.num_nodes) for r in cloud.list_clusters()] == [("c1", ClusterStatus.UP, 2)]
    found = Cluster.get("c1", "aws", ssh_private_key=ssh_key, ssh_user="root", **aws.settings())
    assert found is not None and [n.node_id for n in found.nodes] == ids

    with pytest.raises(ClusterMismatchError, match="2 node"):
        launch(aws, ssh_key, num_nodes=3)
    with pytest.raises(ClusterMismatchError, match="does not fit the request"):
        launch(aws, ssh_key, resources=resources(aws, instance_type="m5.xlarge"))
    with pytest.raises(ClusterMismatchError, match="on-demand instances but spot"):
        launch(aws, ssh_key, resources=resources(aws, use_spot=True))

    first.stop()
    assert first.status() is ClusterStatus.STOPPED
    assert cloud.list_clusters()[0].status is ClusterStatus.STOPPED
    # Relaunching a stopped cluster starts its instances again.
    restarted = launch(aws, ssh_key)
    assert [n.node_id for n in restarted.nodes] == ids and restarted.status() is ClusterStatus.UP
    restarted.wait_ssh_ready(timeout=30)
    assert restarted.run("true").ok
    restarted.stop()
    started = Cluster.from_handle(restarted.handle.to_dict(), ssh_private_key=ssh_key, boto3_session=aws.session)
    started.start()
    assert started.status() is ClusterStatus.UP
    started.wait_ssh_ready(timeout=30)
    started.down()
    assert cloud.list_clusters() == []


def _fail_runs(bed: AwsBed, should_fail: Any, code: str = "InsufficientInstanceCapacity") -> list[dict[str, str]]:
    calls: list[dict[str, str]] = []

    def handler(request: Any, **_: Any) -> Any:
        params = request_params(request)
        calls.append(params)
        if should_fail(params, len(calls)):
            where = params.get("SubnetId") or params.get("Placement.AvailabilityZone") or params["_region"]
            return ec2_error(code, f"We currently do not have sufficient capacity in {where}.")
        return None

    bed.on("before-send.ec2.RunInstances", handler)
    return calls


def test_failover_to_the_next_zone(aws: AwsBed, ssh_key: str) -> None:
    calls = _fail_runs(aws, lambda params, n: n == 1)
    cluster = launch(aws, ssh_key)
    assert len(calls) == 2 and calls[0]["SubnetId"] != calls[1]["SubnetId"]
    zone_of = {subnet: zone for zone, subnet in aws.subnets.items()}
    assert cluster.handle.zone == zone_of[calls[1]["SubnetId"]]
    # The plan's zone order (cheapest first) decides which subnet is tried first.
    assert zone_of[calls[0]["SubnetId"]] == "us-east-1b"
    cluster.down()


def test_failover_to_the_next_region(aws: AwsBed, ssh_key: str) -> None:
    calls = _fail_runs(aws, lambda params, n: params["_region"] == "us-east-1", code="VcpuLimitExceeded")
    cluster = launch(aws, ssh_key, num_nodes=1)
    assert [c["_region"] for c in calls] == ["us-east-1", "us-east-1", "us-west-2"]
    assert cluster.handle.region == "us-west-2" and cluster.handle.zone == "us-west-2a"
    assert not [i for i in instances(aws, "us-east-1", "c1") if i["State"]["Name"] != "terminated"]
    if not aws.skip_reason:
        cluster.wait_ssh_ready(timeout=30)
        assert cluster.run("true").ok
    cluster.down()


def test_every_candidate_fails_with_one_error_listing_all(aws: AwsBed, ssh_key: str) -> None:
    codes = iter(["InsufficientInstanceCapacity", "MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow"])
    calls: list[str] = []

    def handler(request: Any, **_: Any) -> Any:
        params = request_params(request)
        calls.append(params["SubnetId"])
        assert params["InstanceMarketOptions.MarketType"] == "spot"
        return ec2_error(next(codes), f"no capacity in {params['SubnetId']}")

    aws.on("before-send.ec2.RunInstances", handler)
    with pytest.raises(LaunchFailedError) as caught:
        launch(aws, ssh_key, resources=resources(aws, use_spot=True))
    error = caught.value
    assert len(error.attempts) == 3 and len(calls) == 3
    text = str(error)
    for code in ("InsufficientInstanceCapacity", "MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow"):
        assert code in text
    for zone in ("us-east-1a", "us-east-1b", "us-west-2a"):
        assert zone in text
    assert aws.live() == []


def test_bad_ami_stops_at_once(aws: AwsBed, ssh_key: str) -> None:
    calls = _fail_runs(aws, lambda params, n: False)
    with pytest.raises(SkyConfigError, match=r"image_id: image 'ami-0123456789abcdef0' does not exist in us-east-1"):
        launch(aws, ssh_key, resources=resources(aws, image_id="ami-0123456789abcdef0"))
    assert calls == []  # no other zone or region was tried
    # An error that is not about capacity, raised by RunInstances itself, also stops at once.
    calls = _fail_runs(aws, lambda params, n: True, code="InvalidParameterCombination")
    with pytest.raises(Exception, match="InvalidParameterCombination"):
        launch(aws, ssh_key, name="c2")
    assert len(calls) == 1
    assert aws.live() == []


def test_bad_credentials_and_settings(aws: AwsBed, ssh_key: str) -> None:
    from botocore.exceptions import NoCredentialsError

    def no_credentials(**_: Any) -> Any:
        raise NoCredentialsError()

    aws.on("before-sign.ec2.*", no_credentials)
    with pytest.raises(Exception, match="no usable credentials"):
        launch(aws, ssh_key)
    with pytest.raises(SkyConfigError, match="no AWS session"):
        AwsCloud(SshCredentials(ssh_key)).session  # noqa: B018
    with pytest.raises(SkyConfigError, match="ssh_cidr"):
        AwsCloud(SshCredentials(ssh_key), ssh_cidr="everyone")
    with pytest.raises(SkyConfigError, match="unknown setting"):
        AwsCloud(SshCredentials(ssh_key), zone_of_interest="x")
    with pytest.raises(SkyConfigError, match="resources.ports"):
        launch(aws, ssh_key, resources=resources(aws, ports=["http"]))


LAUNCH_AND_DIE = """
import json, os, signal, sys
import boto3
from airflow_provider_sky.core import Cluster
args = json.loads(sys.stdin.read())
session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
def die(**_):
    # Killed right after EC2 created the instances, before the launch tagged ranks or waited for them.
    os.kill(os.getpid(), signal.SIGKILL)
session.events.register("after-call.ec2.RunInstances", die)
Cluster.launch(args["name"], cloud="aws", resources=args["resources"], num_nodes=2,
               ssh_private_key=args["key"], ssh_user="root", boto3_session=session, **args["settings"])
"""


def test_retry_after_a_launch_killed_midway_reuses_its_instances(aws: AwsBed, ssh_key: str, tmp_path: Path) -> None:
    settings = {k: v for k, v in aws.settings().items() if k != "boto3_session"}
    args = {"name": "c1", "resources": resources(aws), "key": ssh_key, "settings": settings}
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH_AND_DIE], input=json.dumps(args), capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    orphans = [i["InstanceId"] for i in instances(aws, "us-east-1", "c1")]
    assert len(orphans) == 2 and all("sky-node-rank" not in tags_of(i) for i in instances(aws, "us-east-1", "c1"))

    retry = launch(aws, ssh_key)  # the retried task
    assert sorted(n.node_id for n in retry.nodes) == sorted(orphans)
    assert [tags_of(i)["sky-node-rank"] for i in sorted(instances(aws, "us-east-1", "c1"),
                                                         key=lambda i: i["InstanceId"])] != []
    if not aws.skip_reason:
        retry.wait_ssh_ready(timeout=30)
    retry.down()
    assert aws.live() == []


def test_an_incomplete_cluster_from_an_earlier_try_is_cleaned_up(aws: AwsBed, ssh_key: str) -> None:
    cluster = launch(aws, ssh_key)
    lost = cluster.nodes[1].node_id
    # One of the two instances vanished (e.g. reclaimed while the first try was being killed).
    aws.ec2().terminate_instances(InstanceIds=[lost])
    assert cluster.status() is ClusterStatus.INIT
    again = launch(aws, ssh_key)
    assert lost not in {n.node_id for n in again.nodes} and cluster.nodes[0].node_id not in {
        n.node_id for n in again.nodes
    }
    assert again.status() is ClusterStatus.UP
    again.down()


def test_public_ips_default_vpc_and_spot_cannot_stop(aws: AwsBed, ssh_key: str) -> None:
    # The default VPC's addresses are the emulator's fake ones: checked in the handle, never connected to.
    cluster = launch(aws, ssh_key, name="pub", use_internal_ips=False, subnet_ids=None, regions=["us-east-1"],
                     resources=resources(aws, use_spot=True))
    try:
        ranked = sorted(instances_any(aws, "pub"), key=lambda i: tags_of(i)["sky-node-rank"])
        for node, inst in zip(cluster.nodes, ranked, strict=True):
            assert node.ip == inst["PublicIpAddress"] and node.internal_ip == inst["PrivateIpAddress"]
            assert inst["InstanceLifecycle"] == "spot"
        rebuilt = Cluster.from_handle(cluster.handle.to_dict(), ssh_private_key=ssh_key, boto3_session=aws.session)
        assert rebuilt.handle.cloud_settings["use_internal_ips"] is False and rebuilt.status() is ClusterStatus.UP
        with pytest.raises(SkyConfigError, match="spot instance"):
            rebuilt.stop()
    finally:
        cluster.down()


def instances_any(bed: AwsBed, name: str) -> list[dict[str, Any]]:
    reply = bed.ec2().describe_instances(Filters=[
        {"Name": f"tag:{TAG_CLUSTER}", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ])
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def test_one_subnet_id_limits_the_launch_to_its_region(aws: AwsBed, ssh_key: str) -> None:
    cluster = launch(aws, ssh_key, name="onesub", num_nodes=1, subnet_ids=aws.subnets["us-west-2a"])
    try:
        assert (cluster.handle.region, cluster.handle.zone) == ("us-west-2", "us-west-2a")
    finally:
        cluster.down()
    calls = _fail_runs(aws, lambda params, n: True)
    with pytest.raises(LaunchFailedError) as caught:
        launch(aws, ssh_key, name="onesub", num_nodes=1, subnet_ids=aws.subnets["us-west-2a"])
    assert len(calls) == 1 and "is not in this region" in str(caught.value)


def test_login_user_defaults_to_the_images_usual_one(aws: AwsBed, ssh_key: str) -> None:
    images = aws.ec2().describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn-ami-hvm-*"]}])
    amazon_linux = images["Images"][0]["ImageId"]
    cluster = Cluster.launch(
        "users", cloud="aws", resources=resources(aws, image_id=amazon_linux), ssh_private_key=ssh_key,
        **aws.settings(use_internal_ips=False, subnet_ids=None, regions=["us-east-1"]),
    )
    try:
        assert cluster.nodes[0].ssh_user == "ec2-user" and cluster.handle.cloud_settings["ssh_user"] == "ec2-user"
        again = Cluster.get("users", "aws", ssh_private_key=ssh_key, boto3_session=aws.session,
                            endpoint_url=aws.endpoint, regions=["us-east-1"])
        assert again is not None and again.nodes[0].ssh_user == "ec2-user"
    finally:
        cluster.down()


def test_begin_and_poll_launch_for_deferrable_tasks(aws: AwsBed, ssh_key: str) -> None:
    import json as _json

    from airflow_provider_sky.core.clouds.aws import LaunchInterruptedError, LaunchTicket
    from airflow_provider_sky.core.spec import parse_resources
    from tests.testbed import wait_until

    cloud = get_cloud("aws", SshCredentials(ssh_key, "root"), **aws.settings())
    assert isinstance(cloud, AwsCloud)
    request = parse_resources(resources(aws))
    ticket = cloud.begin_launch("deferred", request, 2)
    assert ticket.zone == "us-east-1b"  # the plan's first zone with a subnet
    # Spot capacity reclaimed while starting: one instance ends before the cluster runs.
    aws.ec2().terminate_instances(InstanceIds=[ticket.instance_ids[0]])
    with pytest.raises(LaunchInterruptedError) as caught:
        cloud.poll_launch(ticket.to_dict())
    assert caught.value.zone == "us-east-1b"
    assert [i for i in instances(aws, "us-east-1", "deferred") if i["State"]["Name"] != "terminated"] == []

    again = cloud.begin_launch("deferred", request, 2, skip_zones=[caught.value.zone])
    assert again.zone == "us-east-1a"
    carried = LaunchTicket.from_dict(_json.loads(_json.dumps(again.to_dict())))  # e.g. through a trigger
    handle = wait_until(lambda: cloud.poll_launch(carried), 30, "cluster running")
    assert handle.zone == "us-east-1a" and [n.node_id for n in handle.nodes] == list(again.instance_ids)
    assert handle.resources == request.to_dict()
    # A second begin adopts the running cluster instead of launching another.
    assert cloud.begin_launch("deferred", request, 2).instance_ids == again.instance_ids
    cloud.teardown("deferred")
