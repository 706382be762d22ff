"""Detached jobs on real local-cloud nodes: env vars, logs, failure, cancel, surviving the submitter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from airflow_provider_sky.core import Cluster
from airflow_provider_sky.core.errors import JobNotFoundError
from airflow_provider_sky.core.jobs import JobState
from tests.process_table import processes_mentioning

pytestmark = pytest.mark.integration

T = TypeVar("T")


@pytest.fixture
def cluster(sky_home: Path) -> Iterator[Cluster]:
    c = Cluster.launch("jobs", num_nodes=3, resources={"cpus": "1+"})
    yield c
    c.down()


def _wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def test_multi_node_env_vars_match_skypilot(cluster: Cluster) -> None:
    job = cluster.submit(
        run='python3 -c "import json,os; print(json.dumps({k: v for k, v in os.environ.items() '
        "if k.startswith('SKYPILOT_') or k == 'MY_VAR'}))\"",
        envs={"MY_VAR": "hello"},
    )
    lines: list[str] = []
    status = cluster.wait_job(job, on_line=lines.append, timeout=60)
    assert status.state is JobState.SUCCEEDED and status.exit_code == 0
    by_rank = {}
    for line in lines:
        prefix, _, payload = line.partition(") ")
        by_rank[int(prefix.removeprefix("(node "))] = json.loads(payload)
    ips = [n.ip for n in cluster.nodes]
    assert len(set(ips)) == 3
    for rank in range(3):
        env = by_rank[rank]
        assert env["SKYPILOT_NODE_RANK"] == str(rank)
        assert env["SKYPILOT_NODE_IPS"] == "\n".join(ips)
        assert env["SKYPILOT_NUM_NODES"] == "3"
        assert env["SKYPILOT_NUM_GPUS_PER_NODE"] == "0"
        assert env["SKYPILOT_TASK_ID"].endswith(f"{job}_jobs")
        assert json.loads(env["SKYPILOT_CLUSTER_INFO"]) == {
            "cluster_name": "jobs",
            "cloud": "local",
            "region": "local",
            "zone": None,
        }
        assert env["MY_VAR"] == "hello"


def test_failing_node_fails_the_job_with_its_exit_code_and_others_are_cancelled(
    cluster: Cluster, sky_home: Path
) -> None:
    job = cluster.submit(run='if [ "$SKYPILOT_NODE_RANK" = 1 ]; then exit 42; fi; sleep 300')
    status = cluster.wait_job(job, timeout=60)
    assert status.state is JobState.FAILED
    assert status.exit_code == 42 and status.failed_rank == 1
    _wait_for(lambda: not any("sleep 300" in p for p in processes_mentioning(str(sky_home))))


def test_setup_runs_before_run_and_a_failing_setup_skips_run(cluster: Cluster) -> None:
    job = cluster.submit(setup="echo setup > ~/order", run="echo run >> ~/order")
    assert cluster.wait_job(job, timeout=60).state is JobState.SUCCEEDED
    assert cluster.run("cat ~/order").stdout == ["setup\nrun\n"] * 3
    bad = cluster.submit(setup="exit 3", run="touch ~/ran")
    status = cluster.wait_job(bad, timeout=60)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert cluster.run("test -e ~/ran").exit_codes == [1, 1, 1]


def test_tail_logs_is_incremental_by_offset(cluster: Cluster) -> None:
    job = cluster.submit(run="echo one; while [ ! -e ~/go ]; do sleep 0.05; done; echo two; printf partial")
    _wait_for(lambda: cluster.tail_logs(job, 0).data.count(b"\n") == 3)
    first = cluster.tail_logs(job, 0)
    assert first.lines == ["(node 0) one", "(node 1) one", "(node 2) one"]
    assert cluster.tail_logs(job, first.offset).data == b""
    cluster.run("touch ~/go")
    assert cluster.wait_job(job, timeout=30).state is JobState.SUCCEEDED
    rest = cluster.tail_logs(job, first.offset)
    assert rest.lines == ["(node 0) two", "(node 1) two", "(node 2) two"]  # the unterminated line waits
    final = cluster.tail_logs(job, rest.offset, flush=True)
    assert final.lines == ["(node 0) partial", "(node 1) partial", "(node 2) partial"]


def test_cancel_kills_the_process_group_on_every_node(cluster: Cluster, sky_home: Path) -> None:
    job = cluster.submit(run="sleep 300 & sleep 301; wait")
    _wait_for(lambda: sum("sleep 30" in p for p in processes_mentioning(str(sky_home))) == 6)
    cluster.cancel(job)
    status = cluster.job_status(job)
    assert status.state is JobState.CANCELLED
    assert not any("sleep 30" in p for p in processes_mentioning(str(sky_home)))
    cluster.cancel(job)  # cancelling twice is harmless


def test_resubmitting_a_job_id_does_not_start_it_twice(cluster: Cluster) -> None:
    job = cluster.submit(run="echo started >> ~/count", job_id="fixed-id-1")
    assert cluster.wait_job(job, timeout=30).state is JobState.SUCCEEDED
    assert cluster.submit(run="echo started >> ~/count", job_id="fixed-id-1") == "fixed-id-1"
    assert cluster.run("wc -l < ~/count").stdout == ["1\n"] * 3


def test_unknown_job(cluster: Cluster) -> None:
    with pytest.raises(JobNotFoundError, match="has no job 'nope'"):
        cluster.job_status("nope")


def test_workdir_is_uploaded_and_is_the_job_cwd(cluster: Cluster, tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "train.py").write_text("import os; print('rank', os.environ['SKYPILOT_NODE_RANK'])\n")
    job = cluster.submit(run="python3 train.py", workdir=str(workdir))
    lines: list[str] = []
    assert cluster.wait_job(job, on_line=lines.append, timeout=60).state is JobState.SUCCEEDED
    assert sorted(lines) == ["(node 0) rank 0", "(node 1) rank 1", "(node 2) rank 2"]


def test_job_survives_the_submitting_process_being_killed(cluster: Cluster, tmp_path: Path) -> None:
    """The submitter is a separate process killed with SIGKILL while the job is still running."""
    handle = tmp_path / "handle.json"
    handle.write_text(json.dumps(cluster.handle.to_dict()))
    script = (
        "import json, sys, time\n"
        "from airflow_provider_sky.core import Cluster\n"
        f"c = Cluster.from_handle(json.load(open({str(handle)!r})))\n"
        "job = c.submit(run='while [ ! -e ~/go ]; do sleep 0.05; done; echo survived')\n"
        "print(job, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout is not None
        job = proc.stdout.readline().strip()
        assert job, "the submitter printed no job id"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert cluster.job_status(job).state is JobState.RUNNING
    cluster.run("touch ~/go")
    lines: list[str] = []
    assert cluster.wait_job(job, on_line=lines.append, timeout=30).state is JobState.SUCCEEDED
    assert sorted(lines) == [f"(node {r}) survived" for r in range(3)]


def test_a_required_env_left_null_is_a_config_error(cluster: Cluster) -> None:
    from airflow_provider_sky.core import SkyConfigError, TaskSpec

    spec = TaskSpec.from_yaml({"run": "echo $TOKEN", "envs": {"TOKEN": None, "OK": 1}})
    with pytest.raises(SkyConfigError, match="required variable\\(s\\) TOKEN"):
        cluster.submit(run=spec.run, envs=spec.envs)
    job = cluster.submit(run="echo $TOKEN-$OK", envs=spec.with_envs({"TOKEN": "t"}).envs)
    lines: list[str] = []
    assert cluster.wait_job(job, on_line=lines.append, timeout=30).state is JobState.SUCCEEDED
    assert set(lines) == {f"(node {r}) t-1" for r in range(3)}


def test_long_output_is_read_whole_in_chunks(cluster: Cluster) -> None:
    """More output than one read returns, and a line longer than a read: nothing lost or split."""
    job = cluster.submit(
        run="python3 -c \"import sys; [print(f'line-{i:05d}') for i in range(3000)]; "
        "print('x' * 5000); sys.stdout.write('tail-no-newline')\""
    )
    assert cluster.wait_job(job, timeout=60).state is JobState.SUCCEEDED
    lines: list[str] = []
    offset: list[int] | int = 0
    while True:
        chunk = cluster.tail_logs(job, offset, max_bytes=4096, flush=True)
        if chunk.offset == offset or (offset == 0 and not chunk.data):
            break
        lines.extend(chunk.lines)
        offset = chunk.offset
    node0 = "".join(line.removeprefix("(node 0) ") + "\n" for line in lines if line.startswith("(node 0) "))
    numbered = [f"line-{i:05d}" for i in range(3000)]
    assert node0.splitlines()[:3000] == numbered  # no line lost or cut at a chunk boundary
    # The 5000-byte line is longer than one 4096-byte read, so it arrives in pieces, in order.
    assert node0.replace("\n", "") == "".join(numbered) + "x" * 5000 + "tail-no-newline"
    followed: list[str] = []
    cluster.wait_job(job, on_line=followed.append, timeout=30)
    assert followed[-3:] == ["(node 2) line-02999", "(node 2) " + "x" * 5000, "(node 2) tail-no-newline"]
