"""SkyLaunchOperator: launch a cluster (or reuse the live one of that name) and hand its handle to XCom."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID
from airflow_provider_sky.links.cluster import SkyClusterLink
from airflow_provider_sky.links.ec2 import Ec2ConsoleLink
from airflow_provider_sky.operators._common import (
    STATE_CLUSTER,
    XCOM_CLUSTER_NAME,
    check_int,
    default_deferrable,
    load_task,
    state_store,
)
from airflow_provider_sky.utils.templating import is_templated

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_sky.core.resources import Resources
    from airflow_provider_sky.core.spec import TaskSpec
    from airflow_provider_sky.hooks.sky import SkyHook


class SkyLaunchOperator(BaseOperator):
    """Launch ``cluster_name`` on ``cloud`` and return its handle (a JSON dict) as the task's XCom.

    Launching is idempotent by name: a retry, a cleared task or a rerun with the same name reuses
    the live cluster. The name and cloud are recorded in the task state store before launching, so
    a later try of this task instance knows the cluster is its own (and tears it down on failure or
    kill) while a cluster that existed before, launched by someone else, is never torn down here.

    :param cluster_name: cluster name (templated), e.g. ``"train-{{ ds_nodash }}"``.
    :param cloud: ``local`` or ``ssh`` (an SSH pool whose hosts come from the connection).
    :param resources: resources in the task-YAML ``resources`` form (templated); overrides the task's.
    :param num_nodes: number of nodes; default: the task's ``num_nodes``, else 1.
    :param task: a task YAML path or dict in SkyPilot's task format (templated); its ``resources``
        and ``num_nodes`` are used when the arguments above are not given.
    :param sky_conn_id: the ``sky`` connection.
    :param idle_minutes_to_autostop: stop the cluster after this many idle minutes (clouds that
        support it; the local and SSH-pool clouds ignore it with a warning).
    :param down_on_failure: tear down nodes this task launched when launching fails.
    :param deferrable: wait in the triggerer (for AWS instances to run, then for SSH readiness)
        instead of holding a worker slot; without it the task returns as soon as the nodes are started.
    :param ssh_ready_timeout: seconds the deferred wait for SSH readiness may take.
    :param aws_conn_id: the AWS connection for ``cloud="aws"`` (default: the sky connection's
        ``cloud_conn_id`` extra, else ``aws_default``).
    :param launch_timeout: seconds the deferred wait for AWS instances to run may take.
    """

    # ``resources`` is stored as ``cluster_resources``: BaseOperator owns an unrelated ``resources`` attribute.
    template_fields: Sequence[str] = ("cluster_name", "cluster_resources", "task")
    template_fields_renderers = {"cluster_resources": "json", "task": "yaml"}
    operator_extra_links = (SkyClusterLink(), Ec2ConsoleLink())
    ui_color = "#cfe8ff"

    def __init__(
        self,
        *,
        cluster_name: str,
        cloud: str = "local",
        resources: dict[str, Any] | str | None = None,
        num_nodes: int | None = None,
        task: str | dict[str, Any] | None = None,
        sky_conn_id: str = DEFAULT_CONN_ID,
        idle_minutes_to_autostop: int | None = None,
        down_on_failure: bool = True,
        deferrable: bool = default_deferrable(),
        ssh_ready_timeout: float = 300.0,
        aws_conn_id: str | None = None,
        launch_timeout: float = 900.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_sky.core.clouds import check_cloud_name

        self.cloud = check_cloud_name(cloud)
        self.cluster_name = cluster_name
        self.cluster_resources = resources
        self.num_nodes = check_int(num_nodes, "num_nodes", 1, allow_none=True)
        self.task = task
        self.sky_conn_id = sky_conn_id
        self.idle_minutes_to_autostop = check_int(
            idle_minutes_to_autostop, "idle_minutes_to_autostop", 0, allow_none=True
        )
        self.down_on_failure = down_on_failure
        self.deferrable = deferrable
        self.ssh_ready_timeout = ssh_ready_timeout
        self.aws_conn_id = aws_conn_id
        self.launch_timeout = launch_timeout
        self._owned_name: str | None = None
        # Static values are checked now, so a typo fails the DAG file's import, not a run.
        if not is_templated(cluster_name):
            self._check_name(cluster_name)
        if not is_templated(resources):
            self._check_resources(resources)
        if not is_templated(task) and task is not None:
            self._load_task(task)

    # -- validation (the same messages at parse time and after rendering) -----------------------

    @staticmethod
    def _check_name(value: Any) -> str:
        from airflow_provider_sky.core.clouds.base import check_cluster_name

        return check_cluster_name(value)

    @staticmethod
    def _check_resources(value: Any) -> Resources | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise SkyConfigError(
                f"resources: expected a dict in the task-YAML resources form, got {type(value).__name__}"
            )
        from airflow_provider_sky.core.spec import parse_resources

        return parse_resources(value, "resources")

    def _load_task(self, value: Any) -> TaskSpec:
        return load_task(self, value)

    def _request(self) -> tuple[str, Any, int]:
        name = self._check_name(self.cluster_name)
        resources = self._check_resources(self.cluster_resources)
        num_nodes = self.num_nodes
        if self.task is not None:
            spec = self._load_task(self.task)
            resources = resources if resources is not None else spec.resources
            num_nodes = num_nodes if num_nodes is not None else spec.num_nodes
        return name, resources, num_nodes or 1

    # -- execution ---------------------------------------------------------------------------

    def _hook(self) -> SkyHook:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id, cloud_conn_id=self.aws_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        name, resources, num_nodes = self._request()
        hook = self._hook()
        store = state_store(context)
        record = store.get(STATE_CLUSTER) if store is not None else None
        ours_before = (
            isinstance(record, dict) and record.get("cluster_name") == name and record.get("cloud") == self.cloud
        )
        existing = hook.get_cluster(name, self.cloud)
        if existing is not None:
            existing.close()
            whose = "launched by an earlier try of this task" if ours_before else "launched elsewhere"
            self.log.info("Cluster %r already exists (%s): reusing it", name, whose)
        owned = ours_before or existing is None
        if store is not None and owned and not ours_before:
            from airflow.sdk.execution_time.context import NEVER_EXPIRE

            # Written before any node exists: a worker that dies mid-launch leaves a retry that
            # knows the half-launched cluster is its own to reuse or tear down.
            store.set(STATE_CLUSTER, {"cluster_name": name, "cloud": self.cloud}, retention=NEVER_EXPIRE)
        if owned:
            self._owned_name = name
        if self.idle_minutes_to_autostop is not None:
            self.log.warning(
                "idle_minutes_to_autostop=%s: cloud %r has no autostop; the teardown task stops the cluster",
                self.idle_minutes_to_autostop,
                self.cloud,
            )
        if self.cloud == "aws" and self.deferrable:
            # Instances take minutes to run: start them, then wait in the triggerer.
            self._begin_aws_launch(context, hook, name, resources, num_nodes, owned, skip_zones=[])
        started = time.monotonic()
        try:
            cluster = hook.launch(name, self.cloud, resources, num_nodes, context=context)
        except BaseException:
            self._down_after_failure(hook, name, owned)
            raise
        handle = cluster.handle.to_dict()
        cluster.close()
        self.log.info("Launched in %.1fs", time.monotonic() - started)
        return self._after_launch(context, handle, owned)

    def _begin_aws_launch(
        self,
        context: Context,
        hook: SkyHook,
        name: str,
        resources: Resources | None,
        num_nodes: int,
        owned: bool,
        skip_zones: list[str],
    ) -> None:
        from airflow_provider_sky.core.resources import Resources
        from airflow_provider_sky.triggers.aws_launch import AwsLaunchTrigger

        try:
            ticket = hook.get_cloud("aws", context).begin_launch(
                name, resources or Resources(), num_nodes, skip_zones=skip_zones
            )
        except BaseException:
            self._down_after_failure(hook, name, owned)
            raise
        self.log.info(
            "Started %d instance(s) of %r in %s; waiting for them to run in the triggerer",
            len(ticket.instance_ids),
            name,
            ticket.zone or ticket.region,
        )
        self.defer(
            trigger=AwsLaunchTrigger(
                ticket.to_dict(),
                self.sky_conn_id,
                self.aws_conn_id,
                deadline=time.time() + self.launch_timeout,
                resume={"owned": owned, "skip_zones": skip_zones},
            ),
            method_name="execute_running",
            timeout=timedelta(seconds=self.launch_timeout + 60),
        )

    def execute_running(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resumed when the AWS instances run (or did not): go on to SSH readiness, or launch elsewhere."""
        resume = event.get("resume") or {}
        owned = bool(resume.get("owned", True))
        name = self._check_name(self.cluster_name)
        hook = self._hook()
        status = event.get("status")
        if status == "success":
            return self._after_launch(context, event["handle"], owned)
        if status == "interrupted":
            skip = [*resume.get("skip_zones", []), event["zone"]]
            self.log.warning("%s; trying the next candidate", event.get("message"))
            _, resources, num_nodes = self._request()
            self._begin_aws_launch(context, hook, name, resources, num_nodes, owned, skip_zones=skip)
        self._down_after_failure(hook, name, owned)
        from airflow_provider_sky.core.errors import SkyError

        raise SkyError(f"cluster {name!r}: launch failed: {event.get('message')}")

    def _after_launch(self, context: Context, handle: dict[str, Any], owned: bool) -> dict[str, Any]:
        name = handle["cluster_name"]
        self.log.info(
            "Cluster %r is up on %s: %d node(s) (%s)",
            name,
            self.cloud,
            len(handle["nodes"]),
            ", ".join(f"{n['ip']}:{n['ssh_port']}" for n in handle["nodes"]),
        )
        context["ti"].xcom_push(key=XCOM_CLUSTER_NAME, value=name)
        SkyClusterLink.persist(context, handle)
        Ec2ConsoleLink.persist(context, handle)
        if self.deferrable:
            from airflow_provider_sky.triggers.ssh_ready import SshReadyTrigger

            self.defer(
                trigger=SshReadyTrigger(
                    handle,
                    self.sky_conn_id,
                    deadline=time.time() + self.ssh_ready_timeout,
                    poll_interval=1.0,
                    cloud_conn_id=self.aws_conn_id,
                ),
                method_name="execute_complete",
                kwargs={"owned": owned},
                timeout=timedelta(seconds=self.ssh_ready_timeout + 60),
            )
        return handle

    def execute_complete(self, context: Context, event: dict[str, Any], owned: bool | None = None) -> dict[str, Any]:
        if event.get("status") == "success":
            return event["handle"]
        name = self._check_name(self.cluster_name)
        if owned is None:
            store = state_store(context)
            record = store.get(STATE_CLUSTER) if store is not None else None
            owned = isinstance(record, dict) and record.get("cluster_name") == name
        self._down_after_failure(self._hook(), name, owned)
        from airflow_provider_sky.core.errors import SshConnectError

        raise SshConnectError(f"cluster {name!r} did not become reachable over SSH: {event.get('message')}")

    def _down_after_failure(self, hook: SkyHook, name: str, owned: bool) -> None:
        if not (owned and self.down_on_failure):
            return
        try:
            cluster = hook.get_cluster(name, self.cloud)
            if cluster is not None:
                self.log.warning("Launch of %r failed: tearing down the nodes it created", name)
                cluster.down()
        except Exception:
            self.log.exception("Could not tear down %r after the failed launch; tear it down by hand", name)

    def on_kill(self) -> None:
        if self._owned_name is None:
            return
        self.log.warning("Task killed: tearing down cluster %r", self._owned_name)
        try:
            cluster = self._hook().get_cluster(self._owned_name, self.cloud)
            if cluster is not None:
                cluster.down()
        except Exception:
            self.log.exception("Could not tear down %r on kill", self._owned_name)
