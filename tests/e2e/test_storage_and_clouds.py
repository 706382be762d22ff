"""StorageSyncOperator forms, the sensor's failure paths, the SSH-pool cloud through a connection, and on_kill."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
from pathlib import Path

import pytest
from airflow.sdk import DAG

from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, StorageSyncOperator, TeardownOperator
from airflow_provider_sky.sensors import SshReadySensor
from tests.e2e.conftest import local_clusters

START = dt.datetime(2026, 1, 1)
LOGICAL = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def test_storage_sync_forms(run_dag, sky_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for rel, text in (("a.csv", "1,2\n"), ("b.txt", "note\n"), ("sub/c.csv", "3,4\n"), ("skip.tmp", "x")):
        (src / rel).write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.csv").write_text("old")
    out_csv = tmp_path / "out-csv"

    with DAG("storage_sync", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="sync-{{ ds_nodash }}", num_nodes=2)
        first = StorageSyncOperator(
            task_id="first", source=f"file://{src}", destination="cluster:~/in", cluster=launch.output, include="*.csv"
        )
        again = StorageSyncOperator(
            task_id="again", source=str(src), destination="cluster:~/in", cluster=launch.output, include=["*.csv"]
        )
        one = StorageSyncOperator(
            task_id="one", source=str(src), destination="cluster[1]:~/only1", cluster=launch.output, exclude="*.tmp"
        )
        check = SkyExecOperator(
            task_id="check",
            cluster=launch.output,
            run=(
                "set -e; test -f ~/in/a.csv; test -f ~/in/sub/c.csv; ! test -e ~/in/b.txt; "
                'if [ "$SKYPILOT_NODE_RANK" = 1 ]; then test -f ~/only1/b.txt; ! test -e ~/only1/skip.tmp; '
                "else ! test -e ~/only1; fi"
            ),
        )
        back = StorageSyncOperator(
            task_id="back",
            source="cluster[1]:~/only1",
            destination=str(out),
            cluster="sync-{{ ds_nodash }}",  # by name: looked up on the connection's cloud
            delete=True,
            exclude=["sub"],
        )
        back_csv = StorageSyncOperator(
            task_id="back_csv",
            source="cluster[1]:~/only1",
            destination=str(out_csv),
            cluster=launch.output,
            include="*.csv",
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> first >> again >> one >> check >> back >> back_csv >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    # Two csv files to each of two nodes, then nothing new: the second sync is incremental.
    assert result.xcom("first")["files_sent"] == 4
    assert result.xcom("again")["files_sent"] == 0
    assert result.xcom("one")["files_sent"] == 3
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.csv", "b.txt"]
    assert result.xcom("back")["files_deleted"] == 1
    # include filters downloads too (b.txt stays on the node).
    assert sorted(str(p.relative_to(out_csv)) for p in out_csv.rglob("*") if p.is_file()) == ["a.csv", "sub/c.csv"]
    assert result.xcom("back_csv")["files_sent"] == 2
    assert local_clusters(sky_home) == []


def test_sensor_fails_when_nodes_do_not_answer(run_dag, sky_home: Path, capfd) -> None:
    with DAG("sensor_timeout", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="quiet-{{ ds_nodash }}")
        stop = TeardownOperator(task_id="stop", cluster=launch.output, action="stop")
        blocking = SshReadySensor(task_id="blocking", cluster=launch.output, timeout=1, poke_interval=0.2)
        deferred = SshReadySensor(
            task_id="deferred", cluster=launch.output, timeout=1, poke_interval=0.2, deferrable=True
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> stop >> [blocking, deferred] >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {
        "launch": "success",
        "stop": "success",
        "blocking": "failed",
        "deferred": "failed",
        "down": "success",
    }, result.states
    text = capfd.readouterr().out
    assert "AirflowSensorTimeout: SSH readiness timed out: cluster 'quiet-20260401': node(s) 0 not ready" in text
    assert local_clusters(sky_home) == []


@pytest.fixture
def pool_connection(sky_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Two stand-in SSH hosts and a ``sky`` connection (key, user, cloud, hosts) for them, from the environment."""
    from airflow_provider_sky.core.keys import generate_private_key, public_key_line
    from airflow_provider_sky.core.sshd import SshdNode, free_port

    key = generate_private_key()
    nodes, hosts = [], []
    for index in range(2):
        node = SshdNode(sky_home / "pool" / f"host-{index}")
        node.prepare(public_key_line(key), generate_private_key())
        port = free_port("127.0.0.1")
        node.start("127.0.0.1", port)
        nodes.append(node)
        hosts.append(f"127.0.0.1:{port}")
    extra = {"private_key": key, "ssh_user": getpass.getuser(), "cloud": "ssh", "hosts": ",".join(hosts)}
    monkeypatch.setenv("AIRFLOW_CONN_SKY_POOL", json.dumps({"conn_type": "sky", "extra": extra}))
    yield key
    for node in nodes:
        node.stop()


def test_ssh_pool_cloud_through_the_connection(run_dag, pool_connection: str, capfd) -> None:
    with DAG("ssh_pool", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(
            task_id="launch", cluster_name="pool-{{ ds_nodash }}", cloud="ssh", num_nodes=2, sky_conn_id="sky_pool"
        )
        ready = SshReadySensor(task_id="ready", cluster=launch.output, sky_conn_id="sky_pool", deferrable=True)
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            run="echo rank $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES",
            sky_conn_id="sky_pool",
            deferrable=True,
            poll_interval=0.2,
        )
        down = TeardownOperator(task_id="down", cluster=launch.output, sky_conn_id="sky_pool")
        launch >> ready >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    handle = result.xcom("launch")
    assert handle["cloud"] == "ssh" and [n["ip"] for n in handle["nodes"]] == ["127.0.0.1", "127.0.0.1"]
    text = capfd.readouterr().out
    assert "(node 1) rank 1 of 2" in text
    key_body = pool_connection.strip().splitlines()[1]
    assert key_body not in text
    assert result.xcom("down") == {"cluster_name": "pool-20260401", "action": "down", "was_present": True}


def test_on_kill_cancels_the_job_and_tears_down_the_launched_cluster(sky_home: Path) -> None:
    from airflow_provider_sky.core.cluster import Cluster

    cluster = Cluster.launch("killme", "local", num_nodes=1)
    try:
        cluster.wait_ssh_ready(timeout=30)
        job_id = cluster.submit(run="sleep 60", job_id="af-kill-1")
        exec_op = SkyExecOperator(task_id="work", cluster=cluster.handle.to_dict(), run="sleep 60")
        exec_op._cancel_target = (cluster.handle.to_dict(), job_id)
        exec_op.on_kill()
        assert cluster.job_status(job_id).state.value == "CANCELLED"

        launch_op = SkyLaunchOperator(task_id="launch", cluster_name="killme")
        launch_op.on_kill()  # this try launched nothing: the cluster stays
        assert cluster.status() is not None
        launch_op._owned_name = "killme"
        launch_op.on_kill()
        assert cluster.status() is None
        assert local_clusters(sky_home) == []
    finally:
        cluster.down()


def test_teardown_of_a_cluster_already_gone_is_success(run_dag, sky_home: Path) -> None:
    with DAG("gone", schedule=None, start_date=START) as dag:
        TeardownOperator(task_id="down_by_name", cluster="never-launched")
        TeardownOperator(
            task_id="down_by_handle",
            cluster={
                "cluster_name": "gone",
                "cloud": "local",
                "nodes": [{"rank": 0, "node_id": "g", "ip": "127.0.0.1"}],
            },
        )

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    assert result.xcom("down_by_name")["was_present"] is False
    assert re.fullmatch("gone", result.xcom("down_by_handle")["cluster_name"])
