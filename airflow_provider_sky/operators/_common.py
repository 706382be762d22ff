"""Pieces shared by the Sky operators and sensors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.context import Context

    from airflow_provider_sky.core.spec import TaskSpec

#: XCom keys (the return value of a launch task is the handle itself, under ``return_value``).
XCOM_CLUSTER_NAME = "sky_cluster_name"
XCOM_JOB_ID = "sky_job_id"

#: Task state store keys. Renaming one breaks the reattachment of in-flight retries.
STATE_CLUSTER = "sky_cluster"
STATE_JOB = "sky_job"


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when the DAG file is parsed (as Airflow's own operators do)."""
    from airflow.sdk.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def state_store(context: Context) -> Any:
    """The task state store, or None where the runtime has none (it arrived with Airflow 3.3)."""
    return context.get("task_state_store")


def local_path(operator: BaseOperator, value: str) -> Path:
    """A local path; a relative one is taken from the DAG file's folder, so DAGs do not depend on the cwd."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return path
    fileloc = getattr(getattr(operator, "dag", None), "fileloc", None) if operator.has_dag() else None
    return (Path(fileloc).parent / path) if fileloc else path.resolve()


def load_task(operator: BaseOperator, value: Any) -> TaskSpec:
    """Parse a ``task`` argument: a task-YAML path (relative to the DAG file), YAML text or a dict."""
    from airflow_provider_sky.core.errors import SkyConfigError
    from airflow_provider_sky.core.spec import TaskSpec

    if isinstance(value, str) and "\n" not in value and not value.lstrip().startswith("{"):
        path = local_path(operator, value)
        if not path.is_file():
            raise SkyConfigError(f"task: file {str(path)!r} does not exist")
        value = path
    try:
        return TaskSpec.from_yaml(value)
    except SkyConfigError as exc:
        raise SkyConfigError(f"task: {exc}") from None


def check_int(value: Any, param: str, minimum: int, allow_none: bool = False) -> int | None:
    from airflow_provider_sky.core.errors import SkyConfigError

    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SkyConfigError(f"{param}: invalid value {value!r}; accepted: an integer >= {minimum}")
    return value


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``.

    Job output is user data that may echo a secret. Task logs are masked on their way to storage,
    but not every runner masks (``dag.test()`` prints unmasked), so job lines are redacted before
    they are logged at all.
    """
    try:
        from airflow.sdk.log import redact as airflow_redact
    except ImportError:  # pragma: no cover - the SDK moved it
        return text
    return str(airflow_redact(text))
