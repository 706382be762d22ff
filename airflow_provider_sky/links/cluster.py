"""A task-page button pointing at the cluster a task launched or used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.types import TaskInstanceKey

XCOM_CLUSTER_LINK = "sky_cluster_link"


def cluster_url(handle: dict[str, Any]) -> str:
    """Where a person can look at a cluster: its state directory for local clusters, else its head node."""
    cloud = handle.get("cloud")
    name = handle.get("cluster_name", "")
    if cloud == "local":
        from airflow_provider_sky.core.paths import sky_home

        return f"file://{sky_home() / 'local' / name}"
    nodes = handle.get("nodes") or [{}]
    head = nodes[0]
    return f"ssh://{head.get('ssh_user', '')}@{head.get('ip', '')}:{head.get('ssh_port', 22)}"


class SkyClusterLink(BaseOperatorLink):
    """ "Sky cluster" button on launch tasks: the URL recorded when the task launched the cluster."""

    name = "Sky cluster"

    @property
    def xcom_key(self) -> str:
        return XCOM_CLUSTER_LINK

    @staticmethod
    def persist(context: Context, handle: dict[str, Any]) -> None:
        context["ti"].xcom_push(key=XCOM_CLUSTER_LINK, value=cluster_url(handle))

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk import BaseXCom

        value = BaseXCom.get_value(ti_key=ti_key, key=XCOM_CLUSTER_LINK)  # type: ignore[arg-type]
        return str(value) if value else ""
