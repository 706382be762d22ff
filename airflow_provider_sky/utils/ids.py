"""Deterministic identifiers derived from a task instance."""

from __future__ import annotations

import hashlib

from airflow_provider_sky.core.jobs import check_job_id


def job_id_for(dag_id: str, run_id: str, task_id: str, map_index: int | None, attempt: int = 1) -> str:
    """The job id of one attempt of one task instance, in the core's job-id charset.

    The same task instance and attempt always give the same id, so a submit repeated after a
    worker crash finds the job already started instead of starting it twice. ``attempt`` grows
    only when an earlier job of the task instance ended, so a retry of a failed job runs anew.

    :param dag_id: the DAG id.
    :param run_id: the DAG run id (may contain any character: it is hashed).
    :param task_id: the task id.
    :param map_index: the map index (``None`` or ``-1`` for unmapped tasks).
    :param attempt: 1 for the first job of this task instance.
    """
    if not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt: expected a positive integer, got {attempt!r}")
    index = -1 if map_index is None else int(map_index)
    key = "\0".join((dag_id, run_id, task_id, str(index)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return check_job_id(f"af-{digest}-{attempt}")


def job_attempt(job_id: str) -> int:
    """The attempt number encoded by :func:`job_id_for` (1 for ids it did not build)."""
    tail = job_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() and job_id.startswith("af-") else 1
