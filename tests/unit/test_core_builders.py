"""Pure parts of the core, tested alone: job protocol builders (run by a real bash), handle, shell quoting."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_sky.core import ClusterHandle, SkyConfigError, jobs
from airflow_provider_sky.core.keys import fingerprint, generate_private_key, load_pkey, public_key_line
from airflow_provider_sky.core.runner import wrap_command
from airflow_provider_sky.core.shell import env_exports, remote_path


def _bash(script: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, input=stdin, capture_output=True, text=True, env=env, timeout=30, check=False
    )


def _run_job(tmp_path: Path, setup: str | None, run: str | None, envs: dict[str, str] | None = None) -> Path:
    driver = jobs.driver_script(setup=setup, run=run, envs=envs or {}, use_workdir=False)
    started = _bash(jobs.submit_command(".sky-airflow", "j1"), tmp_path, driver)
    assert started.returncode == 0, started.stderr
    job_dir = tmp_path / ".sky-airflow" / "jobs" / "j1"
    # The driver is detached; wait for its exit code file with a deadline.
    for _ in range(600):
        status = _bash(jobs.status_command(".sky-airflow", "j1"), tmp_path).stdout.strip()
        if status != "running":
            break
        subprocess.run(["sleep", "0.05"], check=True)
    return job_dir


def test_driver_runs_setup_then_run_and_records_exit_code(tmp_path: Path) -> None:
    job_dir = _run_job(tmp_path, "echo setup", "echo run; exit 5")
    assert (job_dir / "log").read_text() == "setup\nrun\n"
    assert (job_dir / "exit_code").read_text().strip() == "5"
    line = _bash(jobs.status_command(".sky-airflow", "j1"), tmp_path).stdout
    assert jobs.parse_status_line(0, line) == jobs.NodeJobStatus(0, jobs.JobState.FAILED, 5)


def test_failing_setup_skips_run(tmp_path: Path) -> None:
    job_dir = _run_job(tmp_path, "exit 3", "echo never")
    assert (job_dir / "log").read_text() == ""
    assert (job_dir / "exit_code").read_text().strip() == "3"


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80))
def test_user_text_is_embedded_verbatim(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """Any run text or env value survives the heredoc and the quoting byte for byte."""
    tmp = tmp_path_factory.mktemp("job")
    job_dir = _run_job(tmp, None, 'printf "%s" "$VALUE"', {"VALUE": text})
    assert (job_dir / "log").read_bytes().decode() == text
    driver = (job_dir / "driver.sh").read_text()
    assert "SKY_EOF_" in driver


def test_submit_twice_does_not_start_twice(tmp_path: Path) -> None:
    _run_job(tmp_path, None, "echo once >> $HOME/count")
    again = _bash(jobs.submit_command(".sky-airflow", "j1"), tmp_path, "echo twice >> $HOME/count")
    assert again.returncode == 0
    assert (tmp_path / "count").read_text() == "once\n"


def test_status_lines() -> None:
    assert jobs.parse_status_line(1, "running\n").state is jobs.JobState.RUNNING
    assert jobs.parse_status_line(1, "cancelled").state is jobs.JobState.CANCELLED
    lost = jobs.parse_status_line(1, "lost")
    assert lost.state is jobs.JobState.FAILED and "without an exit code" in lost.detail
    assert jobs.parse_status_line(1, "exit x").state is jobs.JobState.FAILED
    nodes = [jobs.NodeJobStatus(0, jobs.JobState.SUCCEEDED, 0), jobs.NodeJobStatus(1, jobs.JobState.FAILED, 9)]
    combined = jobs.combine("j", nodes)
    assert (combined.state, combined.exit_code, combined.failed_rank) == (jobs.JobState.FAILED, 9, 1)
    assert jobs.combine("j", [jobs.NodeJobStatus(0, jobs.JobState.RUNNING)]).state is jobs.JobState.RUNNING
    # Nodes cancelled because another failed: the failure and its exit code are what is reported.
    mixed = [jobs.NodeJobStatus(0, jobs.JobState.CANCELLED), jobs.NodeJobStatus(1, jobs.JobState.FAILED, 42)]
    assert (jobs.combine("j", mixed).state, jobs.combine("j", mixed).exit_code) == (jobs.JobState.FAILED, 42)
    assert jobs.combine("j", mixed).failed_rank == 1
    cancelled = [jobs.NodeJobStatus(0, jobs.JobState.CANCELLED), jobs.NodeJobStatus(1, jobs.JobState.SUCCEEDED, 0)]
    assert jobs.combine("j", cancelled).state is jobs.JobState.CANCELLED
    assert json.dumps(combined.to_dict())


@pytest.mark.parametrize("bad", ["", "a b", "../x", "x;rm", "-x", None, 3])
def test_job_ids_are_checked(bad: object) -> None:
    with pytest.raises(SkyConfigError, match="job id"):
        jobs.check_job_id(bad)


def test_new_job_ids_are_valid_and_unique() -> None:
    ids = {jobs.new_job_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(jobs.JOB_ID.match(i) for i in ids)


def test_wrap_command_exports_literally(tmp_path: Path) -> None:
    value = "a'b\"c $d `e` ;f\ng"
    out = _bash(wrap_command('printf "%s" "$V"', {"V": value}), tmp_path)
    assert out.stdout == value
    with pytest.raises(SkyConfigError, match="envs: invalid environment variable name .2X."):
        env_exports({"2X": "y"})


def test_remote_paths() -> None:
    assert remote_path("~/data") == "data"
    assert remote_path("~") == "."
    assert remote_path("/abs") == "/abs"


def test_handle_round_trip_and_errors() -> None:
    data = {
        "cluster_name": "c",
        "cloud": "local",
        "nodes": [{"rank": 0, "node_id": "c-0", "ip": "127.0.0.1", "ssh_port": 2222, "host_key": "ssh-ed25519 AAA"}],
        "resources": {"cpus": "2+"},
    }
    handle = ClusterHandle.from_dict(data)
    assert ClusterHandle.from_dict(json.loads(json.dumps(handle.to_dict()))) == handle
    assert handle.nodes[0].known_hosts_name == "[127.0.0.1]:2222"
    for bad, message in [
        ("c", "expected a dict"),
        ({"cloud": "local", "nodes": []}, "missing key"),
        ({**data, "extra": 1}, "unknown key"),
        ({**data, "nodes": []}, "non-empty list"),
        ({**data, "nodes": [{"rank": 0}]}, r"nodes\[0\]"),
    ]:
        with pytest.raises(SkyConfigError, match=message):
            ClusterHandle.from_dict(bad)


def test_keys() -> None:
    private = generate_private_key()
    line = public_key_line(private)
    assert line.startswith("ssh-ed25519 ")
    assert fingerprint(line).startswith("SHA256:")
    assert load_pkey(private).get_name() == "ssh-ed25519"
    with pytest.raises(SkyConfigError, match="ssh private key: cannot parse it"):
        load_pkey("not a key")
