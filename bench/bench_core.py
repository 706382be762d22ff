"""Local-cloud benchmarks for the provisioning core (figures for the closing note, no asserts).

- launch of 4 nodes until every node is SSH-ready (goal < 2 s),
- per-command overhead of ``cluster.run("true")`` on one node against a fresh ``ssh host true`` (goal <= 1.0x),
- ``cluster.run("true")`` on 8 nodes against 1 node (goal < 1.5x).

Run: ``.venv/bin/python bench/bench_core.py``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    home = tempfile.mkdtemp(prefix="sky-bench-")
    os.environ["SKY_AIRFLOW_HOME"] = home
    from airflow_provider_sky.core import Cluster

    Cluster  # noqa: B018 - import paramiko and the core before timing, as a warm worker would
    import paramiko  # noqa: F401

    launches = []
    for i in range(5):
        start = time.perf_counter()
        c = Cluster.launch(f"bench-{i}", num_nodes=4)
        c.wait_ssh_ready(timeout=30, poll_interval=0.02)
        launches.append(time.perf_counter() - start)
        c.down()
    print(
        f"launch 4 nodes -> all SSH-ready: median {statistics.median(launches):.3f} s, "
        f"best {min(launches):.3f} s (goal < 2 s)"
    )

    cluster = Cluster.launch("bench-run", num_nodes=8)
    try:
        cluster.wait_ssh_ready(timeout=30)
        node = cluster.nodes[0]
        one = _median_time(lambda: cluster.run("true", nodes=[0]), 50)
        key_dir = Path(tempfile.mkdtemp(prefix="sky-bench-key-"))
        key = key_dir / "key"
        key.write_text(cluster.cloud.credentials.private_key)
        key.chmod(0o600)
        known = key_dir / "known_hosts"
        known.write_text(f"{node.known_hosts_name} {node.host_key}\n")
        ssh = [
            "ssh",
            "-p",
            str(node.ssh_port),
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{node.ssh_user}@{node.ip}",
            "true",
        ]
        fresh = _median_time(lambda: subprocess.run(ssh, check=True, capture_output=True), 20)
        print(
            f"run('true') on 1 node: median {one * 1000:.1f} ms; fresh `ssh host true`: {fresh * 1000:.1f} ms; "
            f"ratio {one / fresh:.2f}x (goal <= 1.0x)"
        )
        eight = _median_time(lambda: cluster.run("true"), 30)
        print(
            f"run('true') on 8 nodes: median {eight * 1000:.1f} ms vs 1 node {one * 1000:.1f} ms; "
            f"ratio {eight / one:.2f}x (goal < 1.5x; here all 8 nodes' sshd and shells share this machine's "
            f"{os.cpu_count()} cores)"
        )
        # With a command that waits instead of burning CPU, the ratio shows whether nodes run in parallel.
        one_wait = _median_time(lambda: cluster.run("sleep 0.2", nodes=[0]), 5)
        eight_wait = _median_time(lambda: cluster.run("sleep 0.2"), 5)
        print(
            f"run('sleep 0.2') on 8 nodes: median {eight_wait * 1000:.1f} ms vs 1 node {one_wait * 1000:.1f} ms; "
            f"ratio {eight_wait / one_wait:.2f}x"
        )
    finally:
        cluster.down()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
