"""SkyExecOperator: run a detached job on every node of a cluster and stream its log into the task log."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID
from airflow_provider_sky.operators._common import (
    STATE_JOB,
    XCOM_JOB_ID,
    default_deferrable,
    load_task,
    local_path,
    redact,
    state_store,
)
from airflow_provider_sky.utils.cluster_ref import parse_cluster_ref
from airflow_provider_sky.utils.templating import is_templated

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_sky.core.cluster import Cluster
    from airflow_provider_sky.core.spec import TaskSpec
    from airflow_provider_sky.hooks.sky import SkyHook


#: Upper bound on the attempt numbers walked to find a free job id (each costs one status round trip).
MAX_ATTEMPTS = 100


class SkyJobFailed(AirflowException):
    """The job ended without success; the message carries its exit code and failing node."""


class SkyExecOperator(BaseOperator):
    """Submit ``setup``/``run`` as a detached job on every node, follow it and log its lines.

    Lines arrive prefixed ``(node R)``. The task fails when the job fails, with the exit code and
    node in the message. The job id is derived from the task instance and recorded in the task
    state store before submitting, so a retry while the job still runs (or after the worker died)
    re-attaches to it instead of starting it twice; a retry after the job failed runs it anew.

    :param cluster: the launch task's output (``launch.output``), a handle dict or a cluster name (templated).
    :param run: the run command (templated); overrides the task's ``run``.
    :param setup: the setup command (templated); overrides the task's ``setup``.
    :param envs: environment variables for setup and run (templated); override the task's ``envs``
        and fill in its required ``secrets`` (their values are masked in logs).
    :param workdir: a local directory synced to ``~/sky_workdir`` on every node before the job starts,
        which becomes the job's working directory (templated; relative to the DAG file's folder).
    :param task: a task YAML path or dict in SkyPilot's task format (templated).
    :param sky_conn_id: the ``sky`` connection.
    :param deferrable: follow the job from the triggerer, holding no worker slot.
    :param poll_interval: seconds between status polls.
    :param log_interval: deferrable mode: longest time log lines wait in the triggerer before the
        task logs them (each hand-back resumes the task briefly).
    :param job_timeout: seconds after which a still-running job is cancelled and the task fails.
    """

    template_fields: Sequence[str] = ("cluster", "run", "setup", "envs", "workdir", "task")
    #: Log bytes read per node per poll (see :data:`airflow_provider_sky.hooks.sky.LOG_READ_BYTES`).
    log_read_bytes: int = 1 << 20
    template_fields_renderers = {"run": "bash", "setup": "bash", "envs": "json", "task": "yaml"}
    ui_color = "#d9f2d9"

    def __init__(
        self,
        *,
        cluster: Any,
        run: str | None = None,
        setup: str | None = None,
        envs: dict[str, Any] | str | None = None,
        workdir: str | None = None,
        task: str | dict[str, Any] | None = None,
        sky_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 1.0,
        log_interval: float = 10.0,
        job_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.run = run
        self.setup = setup
        self.envs = envs
        self.workdir = workdir
        self.task = task
        self.sky_conn_id = sky_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.log_interval = log_interval
        self.job_timeout = job_timeout
        self._cancel_target: tuple[dict[str, Any], str] | None = None
        if run is None and setup is None and task is None:
            raise SkyConfigError("run: give run, setup or task (the commands to execute on the cluster)")
        if not is_templated(cluster):
            parse_cluster_ref(cluster)
        if not is_templated(envs):
            self._check_envs(envs)
        if not is_templated(task) and task is not None:
            self._load_task(task)

    # -- validation --------------------------------------------------------------------------

    @staticmethod
    def _check_envs(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise SkyConfigError(f"envs: expected a mapping of NAME to value, got {type(value).__name__}")
        bad = [k for k in value if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise SkyConfigError(f"envs: invalid variable name {bad[0]!r}; accepted: letters, digits and '_'")
        return {k: "" if v is None else str(v) for k, v in value.items()}

    def _load_task(self, value: Any) -> TaskSpec:
        return load_task(self, value)

    def _job_request(self) -> dict[str, Any]:
        """setup, run, envs, workdir and file_mounts after rendering, the arguments overriding the task."""
        from airflow.sdk.log import mask_secret

        envs = self._check_envs(self.envs)
        setup, run, workdir, file_mounts = self.setup, self.run, self.workdir, None
        if self.task is not None:
            spec = self._load_task(self.task).with_envs(envs)
            for value in spec.secret_values():
                mask_secret(value)
            envs = {k: v for k, v in {**spec.envs, **spec.secrets}.items() if v is not None}
            setup = setup if setup is not None else spec.setup
            run = run if run is not None else spec.run
            workdir = workdir if workdir is not None else spec.workdir
            # Bucket URIs stay as they are; local sources are taken from the DAG file's folder.
            file_mounts = {
                remote: mount.source if mount.kind == "bucket" else str(local_path(self, mount.source))
                for remote, mount in spec.file_mounts.items()
            } or None
        for name, text in (("run", run), ("setup", setup)):
            if text is not None and not isinstance(text, str):
                raise SkyConfigError(f"{name}: expected a shell command string, got {type(text).__name__}")
        if not setup and not run:
            raise SkyConfigError("run: empty after rendering; give run, setup or a task with them")
        if workdir is not None:
            path = local_path(self, str(workdir))
            if not path.is_dir():
                raise SkyConfigError(f"workdir: {str(path)!r} is not a directory")
            workdir = str(path)
        return {"setup": setup, "run": run, "envs": envs, "workdir": workdir, "file_mounts": file_mounts}

    # -- execution ---------------------------------------------------------------------------

    def _hook(self) -> SkyHook:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id)

    @staticmethod
    def _storage_options(hook: SkyHook, file_mounts: dict[str, str] | None) -> dict[str, Any] | None:
        """S3 credentials from the AWS connection, only when a file mount needs them."""
        if not file_mounts or not any(source.startswith("s3://") for source in file_mounts.values()):
            return None
        return hook.s3_options()

    def _cluster(self, hook: SkyHook) -> Cluster:
        return hook.resolve_cluster(self.cluster)

    def execute(self, context: Context) -> Any:
        from airflow.sdk.execution_time.context import NEVER_EXPIRE

        request = self._job_request()
        hook = self._hook()
        cluster = self._cluster(hook)
        handle = cluster.handle.to_dict()
        ti = context["ti"]
        store = state_store(context)
        record = store.get(STATE_JOB) if store is not None else None
        job_id, submit, finished = self._choose_job(cluster, ti, record)
        if finished is not None:
            cluster.close()
            return finished
        if store is not None and record != {"cluster_name": cluster.name, "job_id": job_id}:
            # Recorded before submitting, and the id is deterministic, so no try can start a twin.
            store.set(STATE_JOB, {"cluster_name": cluster.name, "job_id": job_id}, retention=NEVER_EXPIRE)
        ti.xcom_push(key=XCOM_JOB_ID, value=job_id)
        self._cancel_target = (handle, job_id)
        started = time.monotonic()
        try:
            if submit:
                cluster.submit(
                    setup=request["setup"],
                    run=request["run"],
                    envs=request["envs"],
                    job_id=job_id,
                    workdir=request["workdir"],
                    file_mounts=request["file_mounts"],
                    storage_options=self._storage_options(hook, request["file_mounts"]),
                )
            if self.deferrable:
                cluster.close()
                self._defer(handle, job_id, 0, self._deadline())
            status = self._follow(cluster, job_id, started)
        except Exception:
            # Past its timeout the job is ours to stop; on other errors (a lost connection, a dying
            # worker) it keeps running so that a retry can re-attach to it.
            if self.job_timeout is not None and time.monotonic() - started >= self.job_timeout:
                self._cancel(handle, job_id)
            raise
        finally:
            cluster.close()
        return self._finish(context, cluster.name, status.to_dict())

    def _choose_job(self, cluster: Cluster, ti: Any, record: Any) -> tuple[str, bool, dict[str, Any] | None]:
        """Which job this try follows: ``(job_id, submit it?, status if it already succeeded)``.

        The recorded job of an earlier try wins while it runs or once it succeeded. Otherwise the first
        attempt number whose job does not exist on the cluster is used; walking the attempts (rather
        than trusting the record alone) keeps a job from being silently skipped when the task state
        was cleared (``[state_store] clear_on_success``) while the cluster kept the old jobs.
        """
        from airflow_provider_sky.core.errors import JobNotFoundError
        from airflow_provider_sky.core.jobs import JobState
        from airflow_provider_sky.utils.ids import job_attempt, job_id_for

        attempt = 1
        if isinstance(record, dict) and record.get("cluster_name") == cluster.name and record.get("job_id"):
            recorded = str(record["job_id"])
            try:
                prior = cluster.job_status(recorded)
            except JobNotFoundError:
                self.log.info("Job %s was recorded but never started (the worker died in between)", recorded)
                return recorded, True, None
            if prior.state is JobState.RUNNING:
                self.log.info("Re-attaching to job %s, still running from an earlier try", recorded)
                return recorded, False, None
            if prior.state is JobState.SUCCEEDED:
                self.log.info("Job %s already succeeded in an earlier try: not running it again", recorded)
                return recorded, False, prior.to_dict()
            self.log.info("Job %s ended %s in an earlier try: running it anew", recorded, prior.state.value)
            attempt = job_attempt(recorded) + 1
        for candidate_attempt in range(attempt, attempt + MAX_ATTEMPTS):
            candidate = job_id_for(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, candidate_attempt)
            try:
                found = cluster.job_status(candidate)
            except JobNotFoundError:
                return candidate, True, None
            if found.state is JobState.RUNNING:
                self.log.info("Re-attaching to job %s of this task, still running", candidate)
                return candidate, False, None
        raise AirflowException(f"job: {MAX_ATTEMPTS} earlier jobs of this task exist on {cluster.name!r}; tear it down")

    def _follow(self, cluster: Cluster, job_id: str, started: float) -> Any:
        """Log the job's lines until it ends (the blocking path); returns its final status."""
        from airflow_provider_sky.core.errors import SkyError
        from airflow_provider_sky.hooks.sky import poll_job

        offset: list[int] | int = 0
        while True:
            poll = poll_job(cluster, job_id, offset, self.log_read_bytes)
            offset = poll.offset
            for line in poll.data.decode("utf-8", "replace").splitlines():
                self._log_line(line)
            status = poll.status
            if status.state.value == "FAILED" and not all(n.state.finished for n in status.nodes):
                # One node failed: the others cannot make the job succeed any more.
                cluster.cancel(job_id)
            if poll.done:
                return status
            if poll.more:
                continue
            if self.job_timeout is not None and time.monotonic() - started >= self.job_timeout:
                raise SkyError(f"job {job_id} on {cluster.name!r} still running after {self.job_timeout:g}s")
            time.sleep(self.poll_interval)

    def _deadline(self) -> float | None:
        return None if self.job_timeout is None else time.time() + self.job_timeout

    def _defer(self, handle: dict[str, Any], job_id: str, offset: list[int] | int, deadline: float | None) -> None:
        from airflow_provider_sky.triggers.job import SkyJobTrigger

        self.defer(
            trigger=SkyJobTrigger(
                handle,
                job_id,
                self.sky_conn_id,
                offset=offset,
                poll_interval=self.poll_interval,
                log_interval=self.log_interval,
                deadline=deadline,
                read_bytes=self.log_read_bytes,
            ),
            method_name="execute_complete",
            kwargs={"handle": handle, "job_id": job_id, "deadline": deadline},
            timeout=None if deadline is None else timedelta(seconds=max(1.0, deadline - time.time() + 60)),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        handle: dict[str, Any] | None = None,
        job_id: str | None = None,
        deadline: float | None = None,
    ) -> Any:
        for line in str(event.get("logs") or "").splitlines():
            self._log_line(line)
        status = event.get("status")
        handle = handle or event.get("handle")
        job_id = job_id or event.get("job_id")
        deadline = deadline if deadline is not None else event.get("deadline")
        if handle is None or job_id is None:
            raise AirflowException(f"resumed without the job to follow (event {status!r})")
        if status == "logs":
            self._defer(handle, job_id, event["offset"], deadline)
        if status == "finished":
            return self._finish(context, str(handle.get("cluster_name")), event["job"])
        if status == "timeout":
            self._cancel(handle, job_id)
        raise AirflowException(str(event.get("message") or f"job {job_id}: unexpected event {status!r}"))

    def _log_line(self, line: str) -> None:
        self.log.info("%s", redact(line))

    def _finish(self, context: Context, cluster_name: str, job: dict[str, Any]) -> Any:
        state = job.get("state")
        if state == "SUCCEEDED":
            self.log.info("Job %s succeeded on every node of %r", job.get("job_id"), cluster_name)
            return job
        nodes = job.get("nodes") or []
        # A node that failed explains the job better than the nodes cancelled because of it.
        failed = next((n for n in nodes if n.get("state") == "FAILED"), None) or next(
            (n for n in nodes if n.get("state") == "CANCELLED"), None
        )
        where = f" on node {failed['rank']}" if failed else ""
        detail = f" ({failed['detail']})" if failed and failed.get("detail") else ""
        if state == "CANCELLED" and (failed is None or failed.get("state") == "CANCELLED"):
            raise SkyJobFailed(f"job {job.get('job_id')} on cluster {cluster_name!r} was cancelled{where}")
        code = failed.get("exit_code") if failed else job.get("exit_code")
        how = f"with exit code {code}" if code is not None else "without an exit code"
        raise SkyJobFailed(f"job {job.get('job_id')} on cluster {cluster_name!r} failed {how}{where}{detail}")

    def _cancel(self, handle: dict[str, Any], job_id: str) -> None:
        try:
            cluster = self._hook().from_handle(handle)
            try:
                cluster.cancel(job_id)
            finally:
                cluster.close()
            self.log.warning("Cancelled job %s on %r", job_id, handle.get("cluster_name"))
        except Exception:
            self.log.exception("Could not cancel job %s", job_id)

    def on_kill(self) -> None:
        if self._cancel_target is not None:
            self._cancel(*self._cancel_target)
