"""The detached-job protocol: pure builders for the shell text that starts, inspects and cancels jobs.

A job lives on each node in ``<remote_root>/jobs/<job_id>/``:

- ``driver.sh``  the script that runs setup then run (the user's text embedded verbatim),
- ``pid``        the driver's PID; it is a session leader, so this is also its process group,
- ``log``        setup and run output, stdout and stderr interleaved,
- ``exit_code``  written atomically when the driver ends,
- ``cancelled``  written by :func:`cancel_command` before it kills the group.

The driver is started with ``setsid nohup`` and all its streams redirected, so it
outlives the SSH session and the process that submitted it.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.shell import env_exports

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
WORKDIR = "sky_workdir"


class JobState(str, Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self is not JobState.RUNNING


@dataclass
class NodeJobStatus:
    rank: int
    state: JobState
    exit_code: int | None = None
    detail: str = ""


@dataclass
class JobStatus:
    """A job's state over all nodes: failed when any node failed, with that node's exit code."""

    job_id: str
    state: JobState
    exit_code: int | None
    nodes: list[NodeJobStatus] = field(default_factory=list)

    @property
    def failed_rank(self) -> int | None:
        for state in (JobState.FAILED, JobState.CANCELLED):
            for node in self.nodes:
                if node.state is state:
                    return node.rank
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "exit_code": self.exit_code,
            "nodes": [
                {"rank": n.rank, "state": n.state.value, "exit_code": n.exit_code, "detail": n.detail}
                for n in self.nodes
            ],
        }


def new_job_id() -> str:
    """Sortable and unique across processes: UTC time plus random hex."""
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise SkyConfigError(f"job id {job_id!r:.80} is not valid; accepted: letters, digits, '.', '_' and '-'")
    return job_id


def job_dir(remote_root: str, job_id: str) -> str:
    return f"{remote_root}/jobs/{check_job_id(job_id)}"


def _heredoc(path: str, text: str) -> str:
    """Write ``text`` to ``path`` verbatim: a quoted heredoc with a delimiter absent from the text."""
    while True:
        delimiter = f"SKY_EOF_{secrets.token_hex(8)}"
        if delimiter not in text:
            break
    body = text if text.endswith("\n") else text + "\n"
    return f"cat > {shlex.quote(path)} <<'{delimiter}'\n{body}{delimiter}\n"


def driver_script(
    *,
    setup: str | None,
    run: str | None,
    envs: dict[str, str],
    use_workdir: bool,
) -> str:
    """The per-node driver. Setup runs first; a failing setup is the node's exit code and run is skipped.

    It runs from the job directory, so relative paths in it are the job's files.
    """
    parts = ["#!/bin/bash\n", "# Written by airflow-provider-sky; runs detached from any SSH session.\n"]
    parts.append(env_exports(envs))
    if setup:
        parts.append(_heredoc("setup.sh", setup))
    if run:
        parts.append(_heredoc("run.sh", run))
    job_path = 'job_dir="$PWD"\n'
    parts.append(job_path)
    target = f'"$HOME"/{WORKDIR}' if use_workdir else '"$HOME"'
    parts.append(f"cd {target} || {{ echo 'cannot enter {target}'; echo 1 > \"$job_dir/exit_code\"; exit 1; }}\n")
    parts.append("rc=0\n")
    if setup:
        parts.append('bash "$job_dir/setup.sh" || rc=$?\n')
    if run:
        parts.append('if [ "$rc" -eq 0 ]; then bash "$job_dir/run.sh" || rc=$?; fi\n')
    # Write then rename, so a reader never sees a half-written exit code.
    parts.append('echo "$rc" > "$job_dir/exit_code.tmp" && mv "$job_dir/exit_code.tmp" "$job_dir/exit_code"\n')
    parts.append('exit "$rc"\n')
    return "".join(parts)


def submit_command(remote_root: str, job_id: str) -> str:
    """Reads the driver from stdin into the job directory and starts it detached; prints its PGID."""
    d = shlex.quote(job_dir(remote_root, job_id))
    return (
        f"set -e; mkdir -p {d}; cd {d}; "
        # A job id already started (a retried submit) is not started again.
        "if [ -f pid ]; then cat > /dev/null; cat pid; exit 0; fi; "
        "cat > driver.sh; "
        "setsid nohup bash driver.sh > log 2>&1 < /dev/null & "
        'echo $! > pid; echo "$!"'
    )


def status_command(remote_root: str, job_id: str) -> str:
    """Prints one line: ``missing``, ``cancelled``, ``exit N``, ``running`` or ``lost``."""
    d = shlex.quote(job_dir(remote_root, job_id))
    return (
        f"d={d}; "
        'if [ ! -d "$d" ]; then echo missing; '
        'elif [ -f "$d/cancelled" ]; then echo cancelled; '
        'elif [ -f "$d/exit_code" ]; then echo "exit $(cat "$d/exit_code")"; '
        'elif kill -0 -"$(cat "$d/pid" 2>/dev/null)" 2>/dev/null; then echo running; '
        # The driver may have written exit_code between the two checks above.
        'elif [ -f "$d/exit_code" ]; then echo "exit $(cat "$d/exit_code")"; '
        "else echo lost; fi"
    )


def parse_status_line(rank: int, line: str) -> NodeJobStatus:
    text = line.strip()
    if text == "running":
        return NodeJobStatus(rank, JobState.RUNNING)
    if text == "cancelled":
        return NodeJobStatus(rank, JobState.CANCELLED, None, "cancelled")
    if text.startswith("exit "):
        try:
            code = int(text.split()[1])
        except (IndexError, ValueError):
            return NodeJobStatus(rank, JobState.FAILED, None, f"unreadable exit code {text!r}")
        return NodeJobStatus(rank, JobState.SUCCEEDED if code == 0 else JobState.FAILED, code)
    if text == "lost":
        return NodeJobStatus(rank, JobState.FAILED, None, "the job's processes ended without an exit code")
    return NodeJobStatus(rank, JobState.FAILED, None, f"no such job on this node ({text or 'no answer'})")


def combine(job_id: str, nodes: list[NodeJobStatus]) -> JobStatus:
    """One state for the job. A node's failure wins over cancellation, since nodes are cancelled
    *because* one failed, and the failing node's exit code is what the user needs to see."""
    for node in nodes:
        if node.state is JobState.FAILED:
            return JobStatus(job_id, JobState.FAILED, node.exit_code, nodes)
    for node in nodes:
        if node.state is JobState.CANCELLED:
            return JobStatus(job_id, JobState.CANCELLED, None, nodes)
    if all(node.state is JobState.SUCCEEDED for node in nodes):
        return JobStatus(job_id, JobState.SUCCEEDED, 0, nodes)
    return JobStatus(job_id, JobState.RUNNING, None, nodes)


def cancel_command(remote_root: str, job_id: str, grace_seconds: float = 5.0) -> str:
    """Marks the job cancelled, then TERMs its process group and KILLs what is left after a grace period."""
    d = shlex.quote(job_dir(remote_root, job_id))
    steps = int(grace_seconds * 10)
    return (
        f"d={d}; "
        '[ -d "$d" ] || exit 0; '
        '[ -f "$d/exit_code" ] && exit 0; '
        'touch "$d/cancelled"; '
        'g=$(cat "$d/pid" 2>/dev/null) || exit 0; '
        'kill -TERM -"$g" 2>/dev/null || exit 0; '
        f'for i in $(seq {steps}); do kill -0 -"$g" 2>/dev/null || exit 0; sleep 0.1; done; '
        'kill -KILL -"$g" 2>/dev/null; exit 0'
    )


def kill_all_jobs_command(remote_root: str) -> str:
    """Kills every job's process group under ``remote_root`` (used when a cluster is torn down)."""
    root = shlex.quote(f"{remote_root}/jobs")
    return (
        f'for f in {root}/*/pid; do [ -f "$f" ] || continue; '
        'g=$(cat "$f"); kill -TERM -"$g" 2>/dev/null; done; '
        "sleep 0.2; "
        f'for f in {root}/*/pid; do [ -f "$f" ] || continue; '
        'g=$(cat "$f"); kill -KILL -"$g" 2>/dev/null; done; true'
    )


def log_path(remote_root: str, job_id: str) -> str:
    return f"{job_dir(remote_root, job_id)}/log"


def task_env(
    *,
    rank: int,
    node_ips: list[str],
    num_gpus_per_node: int,
    task_id: str,
    cluster_name: str,
    cloud: str,
    region: str | None,
    zone: str | None,
) -> dict[str, str]:
    """The variables SkyPilot sets for every node, with the same names and meanings."""
    return {
        "SKYPILOT_NODE_RANK": str(rank),
        "SKYPILOT_NODE_IPS": "\n".join(node_ips),
        "SKYPILOT_NUM_NODES": str(len(node_ips)),
        "SKYPILOT_NUM_GPUS_PER_NODE": str(num_gpus_per_node),
        "SKYPILOT_TASK_ID": task_id,
        "SKYPILOT_CLUSTER_INFO": json.dumps(
            {"cluster_name": cluster_name, "cloud": cloud, "region": region, "zone": zone}
        ),
    }
