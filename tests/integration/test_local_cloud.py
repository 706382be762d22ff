"""The local cloud against real sshd processes: launch, reuse, commands, homes, host keys, teardown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_sky.core import Cluster, ClusterHandle, Resources, SkyConfigError
from airflow_provider_sky.core.clouds import ClusterStatus
from airflow_provider_sky.core.errors import ClusterMismatchError, HostKeyMismatchError
from airflow_provider_sky.core.keys import generate_private_key, public_key_line
from tests.process_table import processes_mentioning

pytestmark = pytest.mark.integration


def test_launch_run_and_down_leaves_nothing_running(sky_home: Path) -> None:
    cluster = Cluster.launch("c1", cloud="local", resources=Resources(), num_nodes=3)
    cluster.wait_ssh_ready(timeout=30)
    assert cluster.status() is ClusterStatus.UP
    res = cluster.run("echo $SKY_AIRFLOW_NODE")
    assert res.exit_codes == [0, 0, 0]
    # A detached grandchild escapes the SSH session; teardown must still find it.
    cluster.run("setsid nohup sleep 300 >/dev/null 2>&1 < /dev/null &", nodes=[1])
    assert any("sleep 300" in p for p in processes_mentioning(str(sky_home)))
    cluster.down()
    assert cluster.status() is None
    assert processes_mentioning(str(sky_home)) == []
    assert not (sky_home / "local" / "c1").exists()
    cluster.down()  # already gone: still success


def test_nodes_have_separate_homes_for_commands_sftp_and_rsync(sky_home: Path, tmp_path: Path) -> None:
    cluster = Cluster.launch("homes", num_nodes=2)
    try:
        cluster.run("mkdir -p ~/data && echo node-$SKYPILOT_X > ~/data/who", envs={"SKYPILOT_X": "0"}, nodes=[0])
        cluster.run("mkdir -p ~/data && echo node-1 > ~/data/who", nodes=[1])
        res = cluster.run("cat ~/data/who; pwd")
        assert [out.split()[0] for out in res.stdout] == ["node-0", "node-1"]
        homes = [out.split()[1] for out in res.stdout]
        assert homes[0] != homes[1]

        src = tmp_path / "src"
        src.mkdir()
        (src / "a.txt").write_text("hello")
        cluster.upload(str(src), "~/data/up", nodes=[0])  # rsync
        cluster.transfer.force_sftp = True
        cluster.upload(str(src), "~/data/sftp", nodes=[1])
        listing = cluster.run("ls ~/data").stdout
        assert listing[0].split() == ["up", "who"]
        assert listing[1].split() == ["sftp", "who"]
        with cluster.runner.connections[1].sftp().open("data/who") as fh:
            assert fh.read().decode().strip() == "node-1"
    finally:
        cluster.down()


def test_env_values_arrive_literally(sky_home: Path) -> None:
    tricky = {
        "QUOTES": 'it\'s "quoted"',
        "DOLLAR": "$HOME ${PATH} $(whoami)",
        "SEMI": "a; rm -rf /tmp/never",
        "TICKS": "`hostname`",
        "NEWLINES": "line1\nline2\n",
        "EMPTY": "",
        "UNICODE": "naïve ✓",
    }
    cluster = Cluster.launch("envs", num_nodes=1)
    try:
        script = "; ".join(f'printf "%s\\0" "${name}"' for name in tricky)
        res = cluster.run(script, envs=tricky)
        assert res.exit_codes == [0]
        assert res.stdout[0].split("\0")[:-1] == list(tricky.values())
        job = cluster.submit(run="{ " + script + "; } > ~/envs.out", envs=tricky)
        assert cluster.wait_job(job, timeout=30).state.value == "SUCCEEDED"
        got = cluster.run("cat ~/envs.out").stdout[0]
        assert got.split("\0")[:-1] == list(tricky.values())
    finally:
        cluster.down()


def test_bad_env_name_is_a_config_error(sky_home: Path) -> None:
    cluster = Cluster.launch("badenv", num_nodes=1)
    try:
        with pytest.raises(SkyConfigError, match="invalid environment variable name 'A B'"):
            cluster.run("true", envs={"A B": "x"})
    finally:
        cluster.down()


def test_launch_is_idempotent_by_name_and_checks_fit(sky_home: Path) -> None:
    first = Cluster.launch("same", num_nodes=2, resources={"cpus": "1+"})
    try:
        again = Cluster.launch("same", num_nodes=2, resources={"cpus": "1+"})
        assert again.handle.to_dict() == first.handle.to_dict()
        assert len(list((sky_home / "local").glob("*/cluster.json"))) == 1
        with pytest.raises(ClusterMismatchError, match="already exists with 2 node"):
            Cluster.launch("same", num_nodes=3, resources={"cpus": "1+"})
        with pytest.raises(ClusterMismatchError, match="another SSH key"):
            Cluster.launch("same", num_nodes=2, resources={"cpus": "1+"}, ssh_private_key=generate_private_key())
    finally:
        first.down()


def test_relaunch_after_stop_restarts_the_same_nodes(sky_home: Path) -> None:
    cluster = Cluster.launch("stopper", num_nodes=1)
    try:
        cluster.run("echo kept > ~/state")
        cluster.stop()
        assert cluster.status() is ClusterStatus.STOPPED
        assert processes_mentioning(str(sky_home)) == []
        again = Cluster.launch("stopper", num_nodes=1)
        assert again.run("cat ~/state").stdout == ["kept\n"]
        assert again.handle.nodes[0].host_key == cluster.handle.nodes[0].host_key
    finally:
        cluster.down()


def test_handle_round_trips_and_reaches_the_cluster_from_json(sky_home: Path) -> None:
    cluster = Cluster.launch("rt", num_nodes=2)
    try:
        data = json.loads(json.dumps(cluster.handle.to_dict()))
        assert ClusterHandle.from_dict(data).to_dict() == cluster.handle.to_dict()
        other = Cluster.from_handle(data)
        assert other.run("true").exit_codes == [0, 0]
        found = Cluster.get("rt", "local")
        assert found is not None and found.handle.to_dict() == cluster.handle.to_dict()
        assert Cluster.get("nope", "local") is None
    finally:
        cluster.down()


def test_host_key_mismatch_is_refused(sky_home: Path) -> None:
    cluster = Cluster.launch("hk", num_nodes=1)
    try:
        data = cluster.handle.to_dict()
        data["nodes"][0]["host_key"] = " ".join(public_key_line(generate_private_key()).split()[:2])
        forged = Cluster.from_handle(data)
        with pytest.raises(HostKeyMismatchError, match="host key mismatch for node 0"):
            forged.run("true")
        with pytest.raises(HostKeyMismatchError):
            forged.wait_ssh_ready(timeout=5)
        # A key of another type than the pinned one is refused too (policy path, not BadHostKey).
        data["nodes"][0]["host_key"] = "ssh-rsa " + data["nodes"][0]["host_key"].split()[1]
        with pytest.raises((HostKeyMismatchError, SkyConfigError)):
            Cluster.from_handle(data).run("true")
    finally:
        cluster.down()


def test_unpinned_node_is_pinned_at_first_contact(sky_home: Path) -> None:
    cluster = Cluster.launch("pin", num_nodes=1)
    try:
        expected = cluster.handle.nodes[0].host_key
        data = cluster.handle.to_dict()
        data["nodes"][0]["host_key"] = None
        fresh = Cluster.from_handle(data)
        fresh.wait_ssh_ready(timeout=10)
        assert fresh.handle.nodes[0].host_key == expected
    finally:
        cluster.down()


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"accelerators": "A100:8"}, "resources.accelerators: the local cloud has no accelerators"),
        ({"instance_type": "m5.large"}, "resources.instance_type"),
        ({"infra": "aws"}, "resources.cloud: the request pins cloud 'aws'"),
    ],
)
def test_requests_the_local_cloud_cannot_meet_fail_before_anything_starts(
    sky_home: Path, resources: dict[str, str], message: str
) -> None:
    with pytest.raises(SkyConfigError, match=message):
        Cluster.launch("bad", resources=resources)
    assert not (sky_home / "local" / "bad").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "1bad"}, "cluster_name: invalid value '1bad'"),
        ({"name": "ok", "cloud": "moon"}, "unknown cloud 'moon'; accepted: local, ssh"),
        ({"name": "ok", "num_nodes": 0}, "num_nodes: invalid value 0"),
        ({"name": "ok", "cloud": "ssh"}, "ssh_private_key: required for cloud 'ssh'"),
    ],
)
def test_bad_launch_arguments(sky_home: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SkyConfigError, match=message):
        Cluster.launch(**kwargs)  # type: ignore[arg-type]


def test_command_timeout_and_streaming(sky_home: Path) -> None:
    from airflow_provider_sky.core.errors import CommandTimeoutError

    cluster = Cluster.launch("stream", num_nodes=2)
    try:
        lines: list[tuple[int, str, str]] = []
        res = cluster.run(
            "echo out-$SKYPILOT_R; echo err-$SKYPILOT_R >&2; printf tail",
            envs={"SKYPILOT_R": "x"},
            stream=lambda rank, stream, line: lines.append((rank, stream, line)),
        )
        assert res.ok
        for rank in (0, 1):
            assert (rank, "stdout", "out-x") in lines
            assert (rank, "stderr", "err-x") in lines
            assert (rank, "stdout", "tail") in lines
        assert cluster.run("exit 7", nodes=[1]).exit_codes == [7]
        with pytest.raises(CommandTimeoutError, match="did not finish within 0.5s"):
            cluster.run("sleep 5", nodes=[0], timeout=0.5)
    finally:
        cluster.down()
