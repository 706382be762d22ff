"""Failures, retries and bad input in real dag.test() runs on the local cloud."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from airflow.sdk import DAG

from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, TeardownOperator
from tests.e2e.conftest import local_clusters

START = dt.datetime(2026, 1, 1)
LOGICAL = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_failing_job_fails_task_with_exit_code_and_teardown_still_runs(
    deferrable: bool, run_dag, sky_home: Path, capfd
) -> None:
    with DAG(f"failing_job_{deferrable}", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="fail-{{ ds_nodash }}", num_nodes=2)
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            # Node 1 fails at once while node 0 would run for a minute: the job must be cancelled.
            run='if [ "$SKYPILOT_NODE_RANK" = 1 ]; then echo giving up; exit 7; fi; echo working; sleep 60',
            deferrable=deferrable,
            poll_interval=0.2,
            log_interval=0.2,
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {"launch": "success", "work": "failed", "down": "success"}, result.states
    assert result.state == "failed"
    text = output(capfd)
    assert re.search(r"job af-[0-9a-f]+-1 on cluster 'fail-20260201' failed with exit code 7 on node 1", text), text[
        -3000:
    ]
    assert "(node 1) giving up" in text
    assert local_clusters(sky_home) == []


class FlakyLaunch(SkyLaunchOperator):
    """Launches, then loses its worker on the first try (the exception comes after the cluster is up)."""

    handles: ClassVar[list[dict[str, Any]]] = []

    def execute(self, context):
        handle = super().execute(context)
        FlakyLaunch.handles.append(handle)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after launching")
        return handle


def test_launch_retry_reuses_the_live_cluster(run_dag, sky_home: Path, capfd) -> None:
    FlakyLaunch.handles.clear()
    with DAG("launch_retry", schedule=None, start_date=START) as dag:
        launch = FlakyLaunch(
            task_id="launch", cluster_name="retry-{{ ds_nodash }}", num_nodes=2, retries=1, retry_delay=dt.timedelta(0)
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {"launch": "success", "down": "success"}, result.states
    assert result.tries["launch"] == 2
    first, second = FlakyLaunch.handles
    # A second launch would have new nodes with new host keys and ports.
    assert first == second == result.xcom("launch")
    assert "already exists (launched by an earlier try of this task): reusing it" in output(capfd)
    assert local_clusters(sky_home) == []


class FlakyExec(SkyExecOperator):
    """Loses its worker on the first try while the job is still running (at its first log line)."""

    def _log_line(self, line: str) -> None:
        super()._log_line(line)
        if self._try == 1:
            raise RuntimeError("worker lost while following the job")

    def execute(self, context):
        self._try = context["ti"].try_number
        return super().execute(context)


def test_exec_retry_reattaches_to_the_running_job(run_dag, sky_home: Path, tmp_path: Path, capfd) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    with DAG("exec_reattach", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="reattach-{{ ds_nodash }}", num_nodes=2)
        work = FlakyExec(
            task_id="work",
            cluster=launch.output,
            run='echo started >> "$MARKS/rank-$SKYPILOT_NODE_RANK"; echo tick; sleep 2; echo finished',
            envs={"MARKS": str(marks)},
            poll_interval=0.2,
            retries=1,
            retry_delay=dt.timedelta(0),
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {"launch": "success", "work": "success", "down": "success"}, result.states
    assert result.tries["work"] == 2
    job = result.xcom("work")
    assert job["state"] == "SUCCEEDED" and job["job_id"].endswith("-1")
    assert result.xcom("work", "sky_job_id") == job["job_id"]
    # The job ran exactly once on each node although the task ran twice.
    for rank in (0, 1):
        assert (marks / f"rank-{rank}").read_text() == "started\n"
    assert "Re-attaching to job" in output(capfd)
    assert local_clusters(sky_home) == []


def test_exec_retry_after_a_failed_job_runs_it_anew(run_dag, sky_home: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    with DAG("exec_rerun", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="rerun-{{ ds_nodash }}")
        work = SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            # Fails the first time only.
            run='echo run >> "$MARKS/runs"; [ "$(wc -l < "$MARKS/runs")" -ge 2 ] || exit 3',
            envs={"MARKS": str(marks)},
            poll_interval=0.2,
            retries=1,
            retry_delay=dt.timedelta(0),
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {"launch": "success", "work": "success", "down": "success"}, result.states
    assert result.xcom("work")["job_id"].endswith("-2")
    assert (marks / "runs").read_text() == "run\nrun\n"
    assert local_clusters(sky_home) == []


def test_templated_bad_input_fails_the_task_with_one_line_naming_the_parameter(run_dag, sky_home: Path, capfd) -> None:
    with DAG(
        "bad_input",
        schedule=None,
        start_date=START,
        params={"name": "-bad-", "handle": "{'cluster_name': 'x', 'cloud': 'local'}", "res": {"cpus": "lots"}},
        render_template_as_native_obj=True,
    ) as dag:
        SkyLaunchOperator(task_id="bad_name", cluster_name="{{ params.name }}")
        SkyLaunchOperator(task_id="bad_resources", cluster_name="ok-name", resources="{{ params.res }}")
        SkyExecOperator(task_id="bad_handle", cluster="{{ params.handle }}", run="true")
        SkyExecOperator(task_id="missing_cluster", cluster="nope-{{ ds_nodash }}", run="true")
        TeardownOperator(task_id="bad_teardown", cluster="{{ params.handle }}")

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"failed"}, result.states
    text = output(capfd)
    expected = [
        r"SkyConfigError: cluster_name: invalid value '-bad-'; accepted: ",
        r"SkyConfigError: resources\.cpus: .*'lots'",
        r"SkyConfigError: cluster: malformed cluster handle: missing key\(s\) nodes",
        r"ClusterNotFoundError: cluster: no live cluster named 'nope-20260201'",
    ]
    for pattern in expected:
        assert re.search(pattern, text), f"{pattern!r} not in the task logs"
    assert local_clusters(sky_home) == []


class HookFailingAfterNodesExist:
    """A SkyHook whose launch creates the nodes, then fails (as a cloud that runs out of capacity half-way)."""

    @staticmethod
    def make(conn_id: str):
        from airflow_provider_sky.core.errors import CapacityError
        from airflow_provider_sky.hooks import SkyHook

        class Hook(SkyHook):
            def launch(self, name, cloud, resources, num_nodes, **settings):
                super().launch(name, cloud, resources, num_nodes, **settings).close()
                raise CapacityError(f"no capacity left for {name!r} after {num_nodes} node(s) started")

        return Hook(conn_id)


class HalfLaunch(SkyLaunchOperator):
    def _hook(self):
        return HookFailingAfterNodesExist.make(self.sky_conn_id)


@pytest.mark.parametrize("down_on_failure", [True, False])
def test_failed_launch_tears_down_the_nodes_it_created(down_on_failure: bool, run_dag, sky_home: Path, capfd) -> None:
    with DAG(f"half_launch_{down_on_failure}", schedule=None, start_date=START) as dag:
        HalfLaunch(task_id="launch", cluster_name="half", num_nodes=2, down_on_failure=down_on_failure)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {"launch": "failed"}
    assert "CapacityError: no capacity left for 'half' after 2 node(s) started" in output(capfd)
    if down_on_failure:
        assert local_clusters(sky_home) == []
    else:
        assert local_clusters(sky_home) == ["half"]
        from airflow_provider_sky.core.cluster import Cluster

        Cluster.get("half", "local").down()  # type: ignore[union-attr]


def test_launch_does_not_tear_down_a_cluster_it_did_not_create(run_dag, sky_home: Path) -> None:
    from airflow_provider_sky.core.cluster import Cluster

    Cluster.launch("shared", "local", num_nodes=1).close()
    with DAG("foreign_cluster", schedule=None, start_date=START) as dag:
        # Same name, different shape: the launch fails, and the cluster is someone else's.
        SkyLaunchOperator(task_id="launch", cluster_name="shared", num_nodes=2)

    result = run_dag(dag, logical_date=LOGICAL)

    assert result.states == {"launch": "failed"}
    assert local_clusters(sky_home) == ["shared"]
    Cluster.get("shared", "local").down()  # type: ignore[union-attr]


def test_task_spec_secrets_are_masked_in_the_streamed_log(run_dag, sky_home: Path, tmp_path: Path, capfd) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "job.sh").write_text('echo "model $MODEL token $TOKEN rank $SKYPILOT_NODE_RANK"\n')
    spec = {
        "num_nodes": 2,
        "resources": {"cpus": "1+"},
        "workdir": str(workdir),
        "envs": {"MODEL": "tiny"},
        "secrets": {"TOKEN": None},
        "setup": "echo setup for $MODEL",
        "run": "bash job.sh",
    }
    with DAG("task_spec", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="spec-{{ ds_nodash }}", task=spec)
        work = SkyExecOperator(
            task_id="work", cluster=launch.output, task=spec, envs={"TOKEN": "s3cr3t-Value-42"}, poll_interval=0.2
        )
        down = TeardownOperator(task_id="down", cluster=launch.output)
        launch >> work >> down
        down.as_teardown(setups=launch)

    result = run_dag(dag, logical_date=LOGICAL)

    assert set(result.states.values()) == {"success"}, result.states
    assert len(result.xcom("launch")["nodes"]) == 2  # num_nodes from the task
    text = output(capfd)
    assert "(node 0) setup for tiny" in text
    assert "(node 1) model tiny token *** rank 1" in text
    assert "s3cr3t-Value-42" not in text
    assert local_clusters(sky_home) == []


def reopen(dr: Any) -> None:
    """Put a finished DAG run back to running, as clearing it in the UI does (dag.test clears its tasks)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        run = session.get(DagRun, dr.id)
        assert run is not None
        run.state = DagRunState.RUNNING


def test_a_rerun_after_the_task_state_was_cleared_runs_the_job_again(
    run_dag, sky_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sky.core.cluster import Cluster

    # With clear_on_success the record of the first job is gone, but the live cluster still has the job.
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    marks = tmp_path / "marks"
    marks.mkdir()
    with DAG("exec_rerun_cleared", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="kept-{{ ds_nodash }}")
        SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            run='echo run >> "$MARKS/runs"',
            envs={"MARKS": str(marks)},
            poll_interval=0.2,
        )
    try:
        first = run_dag(dag, logical_date=LOGICAL, run_after=LOGICAL)
        first_job = first.xcom("work")["job_id"]
        reopen(first.dr)
        second = run_dag(dag, logical_date=LOGICAL, run_after=LOGICAL)  # the same run, cleared and run again
    finally:
        cluster = Cluster.get("kept-20260201", "local")
        if cluster is not None:
            cluster.down()

    assert first.dr.run_id == second.dr.run_id
    assert set(second.states.values()) == {"success"}, second.states
    assert [first_job[-2:], second.xcom("work")["job_id"][-2:]] == ["-1", "-2"]
    assert (marks / "runs").read_text() == "run\nrun\n"


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_job_timeout_cancels_the_job(deferrable: bool, run_dag, sky_home: Path, capfd) -> None:
    from airflow_provider_sky.core.cluster import Cluster

    with DAG(f"job_timeout_{deferrable}", schedule=None, start_date=START) as dag:
        launch = SkyLaunchOperator(task_id="launch", cluster_name="slow-{{ ds_nodash }}")
        SkyExecOperator(
            task_id="work",
            cluster=launch.output,
            run="echo started; sleep 60",
            job_timeout=1.5,
            deferrable=deferrable,
            poll_interval=0.2,
        )
    try:
        result = run_dag(dag, logical_date=LOGICAL)
        cluster = Cluster.get("slow-20260201", "local")
        assert cluster is not None
        job_id = result.xcom("work", "sky_job_id")
        assert cluster.job_status(job_id).state.value == "CANCELLED"
        cluster.close()
    finally:
        leftover = Cluster.get("slow-20260201", "local")
        if leftover is not None:
            leftover.down()

    assert result.states == {"launch": "success", "work": "failed"}, result.states
    assert re.search(rf"{job_id}( on 'slow-20260201')? still running (after 1.5s|at its deadline)", output(capfd))
