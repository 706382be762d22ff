"""StorageSyncOperator with ``s3://`` locations: whole DAGs run with ``dag.test()`` against the moto S3
emulator (through an Airflow AWS connection) and, for the cluster legs, a 2-node local-cloud cluster
with real sshd nodes."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.storage.engine import MiB
from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, StorageSyncOperator, TeardownOperator
from tests.e2e.conftest import local_clusters, run_dag, sky_home  # noqa: F401 - fixtures used by this module
from tests.testbed import MotoServer, boto3_session

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

START = dt.datetime(2026, 1, 1)
LOGICAL = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
AWS_CONN = "sky_s3_sync_test"
# The nodes' non-interactive shells do not have the virtualenv's bin directory on their PATH.
AWS_CLI = str(Path(sys.executable).with_name("aws"))


class Buckets:
    """Buckets made in the emulator for one test, emptied and deleted afterwards."""

    def __init__(self, server: MotoServer) -> None:
        self.client = boto3_session().client("s3", endpoint_url=server.endpoint)
        self.names: list[str] = []

    def make(self) -> str:
        name = f"sky-op-{secrets.token_hex(4)}"
        self.client.create_bucket(Bucket=name)
        self.names.append(name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                body = self.client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"][len(prefix):]] = body
        return out

    def close(self) -> None:
        for name in self.names:
            keys = list(self.objects(name))
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": k} for k in keys[start:start + 1000]]
                self.client.delete_objects(Bucket=name, Delete={"Objects": chunk})
            self.client.delete_bucket(Bucket=name)


@pytest.fixture
def buckets(moto_server: MotoServer) -> Iterator[Buckets]:
    made = Buckets(moto_server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def aws_conn(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow AWS connection (from the environment) pointing at the emulator."""
    connection = {
        "conn_type": "aws",
        "login": "AKIDSYNCOPERATOR",
        "password": "fake-secret-for-the-emulator",
        "extra": {"region_name": "us-east-1", "endpoint_url": moto_server.endpoint},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{AWS_CONN.upper()}", json.dumps(connection))
    return AWS_CONN


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_local_s3_and_s3_to_s3(run_dag, buckets: Buckets, aws_conn: str, tmp_path: Path,  # noqa: F811
                               monkeypatch: pytest.MonkeyPatch) -> None:
    big = bytes(range(256)) * (9 * MiB // 256)  # above the engine's 8 MiB threshold: a multipart upload
    files = {"a.csv": b"1,2\n", "b.txt": b"note\n", "sub/c.csv": b"3,4\n", "big.bin": big}
    src = make_tree(tmp_path / "src", files)
    # What the download must leave alone (outside include, or excluded) and what it must delete.
    out = make_tree(tmp_path / "out", {"stale.csv": b"old", "keep.txt": b"mine", "sub/old.csv": b"excluded"})
    one, two = buckets.make(), buckets.make()
    # A sky connection whose cloud_conn_id extra names the AWS connection: the operator's default route.
    monkeypatch.setenv("AIRFLOW_CONN_SKY_S3_VIA_EXTRA", json.dumps({"conn_type": "sky", "extra": {
        "cloud_conn_id": aws_conn}}))

    with DAG("s3_sync_no_cluster", schedule=None, start_date=START) as dag:
        up = StorageSyncOperator(task_id="up", source=str(src), destination=f"s3://{one}/data", aws_conn_id=aws_conn)
        again = StorageSyncOperator(
            task_id="again", source=f"file://{src}", destination=f"s3://{one}/data", sky_conn_id="sky_s3_via_extra"
        )
        down = StorageSyncOperator(
            task_id="down",
            source=f"s3://{one}/data",
            destination=str(out),
            aws_conn_id=aws_conn,
            include="*.csv",
            exclude=["sub/*"],
            delete=True,
        )
        copy = StorageSyncOperator(
            task_id="copy", source=f"s3://{one}/data/", destination=f"s3://{two}/copy", aws_conn_id=aws_conn
        )
        up >> again >> down >> copy

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    assert buckets.objects(one, "data/") == files
    up_stats = result.xcom("up")
    assert (up_stats["files_sent"], up_stats["bytes_sent"], up_stats["method"]) == (4, sum(map(len, files.values())),
                                                                                   "s3")
    # The second run finds every object current: incremental.
    assert {k: result.xcom("again")[k] for k in ("files_sent", "bytes_sent", "files_skipped")} == {
        "files_sent": 0, "bytes_sent": 0, "files_skipped": 4
    }
    # Only a.csv passes include and not exclude; stale.csv (passing the globs) goes, the rest stays.
    assert tree(out) == {"a.csv": b"1,2\n", "keep.txt": b"mine", "sub/old.csv": b"excluded"}
    assert {k: result.xcom("down")[k] for k in ("files_sent", "files_deleted")} == {"files_sent": 1,
                                                                                     "files_deleted": 1}
    assert buckets.objects(two, "copy/") == files
    assert result.xcom("copy")["files_sent"] == 4
    json.dumps([result.xcom(t) for t in ("up", "again", "down", "copy")])  # JSON-able XComs


def test_s3_and_a_two_node_cluster_through_the_worker(run_dag, sky_home: Path, buckets: Buckets,  # noqa: F811
                                                      aws_conn: str) -> None:
    bucket = buckets.make()
    for key, data in {"in/a.csv": b"1,2\n", "in/sub/c.csv": b"3,4\n"}.items():
        buckets.put(bucket, key, data)

    with DAG("s3_sync_cluster", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="s3op-{{ ds_nodash }}", num_nodes=2)
        to_nodes = StorageSyncOperator(
            task_id="to_nodes", source=f"s3://{bucket}/in", destination="cluster:~/x", cluster=launch.output,
            aws_conn_id=aws_conn,
        )
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            run=(
                "set -e; test \"$(cat ~/x/a.csv)\" = 1,2; test -f ~/x/sub/c.csv; mkdir -p ~/y; "
                'echo "$SKYPILOT_NODE_RANK" > ~/y/rank.txt; echo out > ~/y/"r-$SKYPILOT_NODE_RANK.txt"'
            ),
        )
        again = StorageSyncOperator(
            task_id="again", source=f"s3://{bucket}/in", destination="cluster:~/x", cluster=launch.output,
            aws_conn_id=aws_conn, cluster_mode="worker",
        )
        from_one = StorageSyncOperator(
            task_id="from_one", source="cluster[1]:~/y", destination=f"s3://{bucket}/out1", cluster=launch.output,
            aws_conn_id=aws_conn,
        )
        from_all = StorageSyncOperator(
            task_id="from_all", source="cluster:~/y", destination=f"s3://{bucket}/all", cluster=launch.output,
            aws_conn_id=aws_conn,
        )
        one_file = StorageSyncOperator(
            task_id="one_file", source="cluster:~/y/rank.txt", destination=f"s3://{bucket}/files",
            cluster=launch.output, aws_conn_id=aws_conn,
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> to_nodes >> work >> again >> from_one >> from_all >> one_file >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    # Two objects written to each of two nodes, streamed through the worker; then nothing new.
    assert (result.xcom("to_nodes")["files_sent"], result.xcom("to_nodes")["method"]) == (4, "s3-worker")
    assert (result.xcom("again")["files_sent"], result.xcom("again")["files_skipped"]) == (0, 4)
    assert buckets.objects(bucket, "out1/") == {"rank.txt": b"1\n", "r-1.txt": b"out\n"}
    assert result.xcom("from_one")["files_sent"] == 2
    # cluster:PATH as a source keeps each node's copy under node-<rank>/, as a local download does.
    assert buckets.objects(bucket, "all/") == {
        "node-0/rank.txt": b"0\n", "node-0/r-0.txt": b"out\n", "node-1/rank.txt": b"1\n", "node-1/r-1.txt": b"out\n",
    }
    assert result.xcom("from_all")["files_sent"] == 4
    assert buckets.objects(bucket, "files/") == {"node-0/rank.txt": b"0\n", "node-1/rank.txt": b"1\n"}
    assert local_clusters(sky_home) == []


def test_s3_and_a_cluster_through_the_nodes(run_dag, sky_home: Path, buckets: Buckets, aws_conn: str,  # noqa: F811
                                           capfd: pytest.CaptureFixture[str]) -> None:
    """``cluster_mode="nodes"``: each node runs the AWS CLI itself with short-lived credentials."""
    bucket = buckets.make()
    buckets.put(bucket, "in/a.csv", b"1,2\n")

    with DAG("s3_sync_nodes", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="s3nodes-{{ ds_nodash }}", num_nodes=2)
        pull = StorageSyncOperator(
            task_id="pull", source=f"s3://{bucket}/in", destination="cluster:~/n", cluster=launch.output,
            aws_conn_id=aws_conn, cluster_mode="nodes", node_aws_command=AWS_CLI,
        )
        push = StorageSyncOperator(
            task_id="push", source="cluster[1]:~/n", destination=f"s3://{bucket}/back", cluster=launch.output,
            aws_conn_id=aws_conn, cluster_mode="nodes", node_aws_command=AWS_CLI,
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> pull >> push >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    assert result.xcom("pull")["method"] == "s3-nodes"
    assert buckets.objects(bucket, "back/") == {"a.csv": b"1,2\n"}
    captured = capfd.readouterr()
    out = captured.out + captured.err
    # One summary line per sync task; the connection's own secret never goes to the nodes nor into a log line.
    # (The AWS CLI on the nodes reports files, not bytes, so the byte count is not checked here.)
    assert re.search(rf"Synced s3://{bucket}/in -> cluster:~/n: 2 file\(s\) sent \(\d+ bytes\), 0 unchanged, "
                     r"0 deleted \(s3-nodes\)", out), out[-3000:]
    assert out.count("Synced ") == 2
    assert "fake-secret-for-the-emulator" not in out
    assert local_clusters(sky_home) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "/x", "destination": "gs://bucket/k"}, "destination: scheme 'gs'"),
        ({"source": "/x", "destination": "s3://b-1/k", "cluster_mode": "both"}, "cluster_mode: invalid value 'both'"),
        ({"source": "s3://", "destination": "/x"}, "source: 's3://' names no bucket"),
        ({"source": "/x", "destination": "s3:///k"}, "destination: 's3:///k' names no bucket"),
        ({"source": "s3://b-1/k", "destination": "cluster:~/x"}, "cluster: required"),
    ],
)
def test_parse_time_errors(kwargs: dict[str, Any], message: str) -> None:
    with DAG("s3_sync_bad", schedule=None, start_date=START), pytest.raises(SkyConfigError) as info:
        StorageSyncOperator(task_id="bad", **kwargs)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    if "scheme" in message:
        assert "s3://BUCKET/PREFIX" in str(info.value) and "cluster:PATH" in str(info.value)


def test_local_to_s3_needs_no_cluster_and_s3_to_cluster_names_it() -> None:
    with DAG("s3_sync_ok", schedule=None, start_date=START):
        op = StorageSyncOperator(task_id="ok", source="/x", destination="s3://b-1/k", cluster_mode="nodes")
    assert (op.cluster, op.cluster_mode, op.aws_conn_id) == (None, "nodes", None)
