"""The SSH-pool cloud against real sshd hosts: claims, exclusivity, reuse, release."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from airflow_provider_sky.core import Cluster, SkyConfigError
from airflow_provider_sky.core.clouds.ssh_pool import CLAIM, parse_hosts
from airflow_provider_sky.core.errors import CapacityError, ClusterMismatchError, HostKeyMismatchError
from airflow_provider_sky.core.jobs import JobState
from tests.integration.conftest import PoolHosts
from tests.process_table import processes_mentioning

pytestmark = pytest.mark.integration


def _claims(pool: PoolHosts) -> list[str | None]:
    out = []
    for index in range(len(pool.nodes)):
        link = pool.home(index) / CLAIM
        out.append(str(link.readlink()) if link.is_symlink() else None)
    return out


def test_claim_run_and_release(pool: PoolHosts, ssh_key: str) -> None:
    hosts = pool.start(3)
    cluster = Cluster.launch("a", cloud="ssh", num_nodes=2, ssh_private_key=ssh_key, hosts=hosts)
    assert _claims(pool) == ["a", "a", None]
    cluster.wait_ssh_ready(timeout=20)
    job = cluster.submit(run="echo $SKYPILOT_NODE_RANK > ~/sky_workdir_probe; sleep 300")
    assert cluster.job_status(job).state is JobState.RUNNING
    assert (pool.home(0) / ".sky-airflow" / "jobs" / job / "log").exists()
    cluster.down()
    assert _claims(pool) == [None, None, None]
    assert not (pool.home(0) / ".sky-airflow").exists()
    assert not any("sleep 300" in p for p in processes_mentioning(str(pool.root)))
    cluster.down()  # idempotent


def test_two_clusters_never_share_a_host(pool: PoolHosts, ssh_key: str) -> None:
    hosts = pool.start(4)
    results: dict[str, object] = {}

    def launch(name: str) -> None:
        try:
            results[name] = Cluster.launch(name, cloud="ssh", num_nodes=2, ssh_private_key=ssh_key, hosts=hosts)
        except Exception as exc:  # recorded and asserted below
            results[name] = exc

    threads = [threading.Thread(target=launch, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, Cluster) for r in results.values()), results
    claims = _claims(pool)
    assert sorted(claims) == ["x", "x", "y", "y"]  # type: ignore[type-var]
    x, y = results["x"], results["y"]
    assert isinstance(x, Cluster) and isinstance(y, Cluster)
    assert {n.ssh_port for n in x.nodes}.isdisjoint({n.ssh_port for n in y.nodes})
    with pytest.raises(CapacityError, match=r"needs 1 free host\(s\), found 0.*held by cluster"):
        Cluster.launch("z", cloud="ssh", num_nodes=1, ssh_private_key=ssh_key, hosts=hosts)
    x.down()
    y.down()
    assert _claims(pool) == [None] * 4


def test_relaunch_reuses_claimed_hosts_and_checks_the_count(pool: PoolHosts, ssh_key: str) -> None:
    hosts = pool.start(3)
    first = Cluster.launch("r", cloud="ssh", num_nodes=2, ssh_private_key=ssh_key, hosts=hosts)
    try:
        again = Cluster.launch("r", cloud="ssh", num_nodes=2, ssh_private_key=ssh_key, hosts=hosts)
        assert [n.node_id for n in again.nodes] == [n.node_id for n in first.nodes]
        assert _claims(pool) == ["r", "r", None]
        with pytest.raises(ClusterMismatchError, match="already holds 2 host"):
            Cluster.launch("r", cloud="ssh", num_nodes=1, ssh_private_key=ssh_key, hosts=hosts)
        # The hosts are the truth: a lost handle is found again from the claims.
        found = Cluster.get("r", "ssh", ssh_private_key=ssh_key, hosts=hosts)
        assert found is not None and found.run("true").exit_codes == [0, 0]
    finally:
        first.down()


def test_failed_launch_releases_partial_claims(pool: PoolHosts, ssh_key: str) -> None:
    hosts = pool.start(2)
    hosts_with_dead = [*hosts, {"host": "127.0.0.1", "port": 1, "user": hosts[0]["user"]}]
    with pytest.raises(CapacityError, match=r"\[127.0.0.1\]:1: unreachable"):
        Cluster.launch("big", cloud="ssh", num_nodes=3, ssh_private_key=ssh_key, hosts=hosts_with_dead)
    assert _claims(pool) == [None, None]


def test_pool_host_keys_are_pinned_at_first_contact(pool: PoolHosts, ssh_key: str, sky_home: Path) -> None:
    hosts = pool.start(1)
    cluster = Cluster.launch("k", cloud="ssh", num_nodes=1, ssh_private_key=ssh_key, hosts=hosts)
    cluster.down()
    assert (sky_home / "ssh" / "known_hosts.json").exists()
    # The host is "reinstalled" with a new host key: the pin refuses it.
    node = pool.nodes[0]
    node.stop()
    from airflow_provider_sky.core.keys import generate_private_key, public_key_line

    node.prepare(public_key_line(ssh_key), generate_private_key())
    node.start("127.0.0.1", int(hosts[0]["port"]))  # type: ignore[call-overload]
    with pytest.raises(HostKeyMismatchError, match="host key mismatch"):
        Cluster.launch("k", cloud="ssh", num_nodes=1, ssh_private_key=ssh_key, hosts=hosts)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ([], "hosts: expected a non-empty list"),
        (["user@host:notaport"], r"hosts\[0\]: invalid host"),
        ([{"host": "h", "port": 70000}], r"hosts\[0\].port: invalid value 70000"),
        ([{"hots": "h"}], r"hosts\[0\]: invalid host"),
        (["h", "h:22"], "listed twice"),
    ],
)
def test_bad_host_lists(hosts: object, message: str) -> None:
    with pytest.raises(SkyConfigError, match=message):
        parse_hosts(hosts)


def test_host_strings() -> None:
    parsed = parse_hosts("alice@10.0.0.1:2222, bob@h2 h3")
    assert [(h.user, h.host, h.port) for h in parsed] == [
        ("alice", "10.0.0.1", 2222),
        ("bob", "h2", 22),
        (None, "h3", 22),
    ]
