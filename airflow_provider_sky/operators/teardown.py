"""TeardownOperator: take a cluster down (or stop it) and wait until its nodes are gone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID
from airflow_provider_sky.utils.cluster_ref import parse_cluster_ref
from airflow_provider_sky.utils.templating import is_templated

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

ACTIONS = ("down", "stop")


class TeardownOperator(BaseOperator):
    """Tear a cluster down (``action="down"``) or stop it (``"stop"``, where the cloud can stop).

    Idempotent: a cluster that is already gone is success. It returns once the cloud reports the
    cluster gone (or stopped). Use it as a teardown task, ``down.as_teardown(setups=launch)``, so
    it runs when work tasks fail and does not decide the DAG run's state.

    :param cluster: the launch task's output (``launch.output``), a handle dict or a cluster name (templated).
    :param action: ``"down"`` (delete every node) or ``"stop"``.
    :param sky_conn_id: the ``sky`` connection.
    :param wait_timeout: seconds to wait for the nodes to be gone.
    :param aws_conn_id: the AWS connection for AWS clusters (default: the sky connection's
        ``cloud_conn_id`` extra, else ``aws_default``).
    """

    template_fields: Sequence[str] = ("cluster",)
    ui_color = "#ffd6d6"

    def __init__(
        self,
        *,
        cluster: Any,
        action: str = "down",
        sky_conn_id: str = DEFAULT_CONN_ID,
        wait_timeout: float = 300.0,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if action not in ACTIONS:
            raise SkyConfigError(f"action: invalid value {action!r}; accepted: 'down' or 'stop'")
        self.cluster = cluster
        self.action = action
        self.sky_conn_id = sky_conn_id
        self.wait_timeout = wait_timeout
        self.aws_conn_id = aws_conn_id
        if not is_templated(cluster):
            parse_cluster_ref(cluster)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_sky.core.clouds.base import ClusterStatus
        from airflow_provider_sky.hooks.sky import SkyHook

        ref = parse_cluster_ref(self.cluster)
        hook = SkyHook(self.sky_conn_id, cloud_conn_id=self.aws_conn_id)
        cluster = hook.from_handle(ref.handle) if ref.handle is not None else hook.get_cluster(ref.name)
        if cluster is None or cluster.status() is None:
            self.log.info("Cluster %r is already gone", ref.name)
            return {"cluster_name": ref.name, "action": self.action, "was_present": False}
        if self.action == "stop" and not cluster.cloud.supports_stop:
            raise SkyConfigError(f"action: cloud {cluster.handle.cloud!r} cannot stop clusters; use action='down'")
        started = time.monotonic()
        if self.action == "down":
            cluster.down()
            target = None
        else:
            cluster.stop()
            target = ClusterStatus.STOPPED
        deadline = started + self.wait_timeout
        while (status := cluster.status()) != target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster {ref.name!r} still {status} {self.wait_timeout:g}s after {self.action}")
            time.sleep(0.2)
        self.log.info("Cluster %r: %s done in %.1fs", ref.name, self.action, time.monotonic() - started)
        return {"cluster_name": ref.name, "action": self.action, "was_present": True}
