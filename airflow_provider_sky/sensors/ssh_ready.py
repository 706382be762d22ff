"""SshReadySensor: succeeds when every node of a cluster accepts SSH with its pinned key."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID
from airflow_provider_sky.operators._common import default_deferrable
from airflow_provider_sky.utils.cluster_ref import parse_cluster_ref
from airflow_provider_sky.utils.templating import is_templated

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_sky.core.cluster import Cluster


class SshReadySensor(BaseSensorOperator):
    """Wait until every node of ``cluster`` accepts SSH with its pinned host key and runs ``true``.

    Its XCom is the cluster handle, so downstream tasks may take either task's output. A node that
    presents a different host key fails the sensor at once: waiting would not fix it.

    :param cluster: the launch task's output (``launch.output``), a handle dict or a cluster name (templated).
    :param sky_conn_id: the ``sky`` connection.
    :param deferrable: poke once, then wait in the triggerer, holding no worker slot.
    :param timeout: seconds before the sensor fails (as for every sensor).
    :param poke_interval: seconds between rounds (as for every sensor).
    """

    template_fields: Sequence[str] = ("cluster",)
    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        cluster: Any,
        sky_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = default_deferrable(),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 1.0)
        kwargs.setdefault("timeout", 300.0)
        super().__init__(**kwargs)
        self.cluster = cluster
        self.sky_conn_id = sky_conn_id
        self.deferrable = deferrable
        if not is_templated(cluster):
            parse_cluster_ref(cluster)

    def _connect(self) -> Cluster:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id).resolve_cluster(self.cluster)

    def poke(self, context: Context) -> PokeReturnValue:
        cluster = self._connect()
        try:
            ready = cluster.ssh_ready_nodes()
        finally:
            cluster.close()
        self.log.info("Cluster %r: %d of %d node(s) ready over SSH", cluster.name, sum(ready), len(ready))
        return PokeReturnValue(is_done=all(ready), xcom_value=cluster.handle.to_dict())

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        from airflow_provider_sky.triggers.ssh_ready import SshReadyTrigger

        timeout = float(self.timeout) if self.timeout is not None else None
        self.defer(
            trigger=SshReadyTrigger(
                dict(first.xcom_value or {}),
                self.sky_conn_id,
                deadline=None if timeout is None else time.time() + timeout,
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=None if timeout is None else timedelta(seconds=timeout + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        status = event.get("status")
        if status == "success":
            return event["handle"]
        if status == "timeout":
            raise AirflowSensorTimeout(f"SSH readiness timed out: {event.get('message')}")
        raise AirflowException(f"SSH readiness check failed: {event.get('message')}")
