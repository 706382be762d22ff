"""A task-page button opening the EC2 console filtered to a cluster's instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.types import TaskInstanceKey

XCOM_EC2_CONSOLE_LINK = "sky_ec2_console_link"
#: The tag every instance of a cluster carries (see ``core/clouds/aws.py``).
CLUSTER_TAG = "sky-cluster-name"


def ec2_console_url(handle: dict[str, Any]) -> str:
    """The EC2 console's instance list in the cluster's region, filtered by the cluster's tag ("" if not AWS)."""
    if handle.get("cloud") != "aws" or not handle.get("region"):
        return ""
    region = quote(str(handle["region"]), safe="")
    name = quote(str(handle.get("cluster_name", "")), safe="")
    return f"https://{region}.console.aws.amazon.com/ec2/home?region={region}#Instances:tag:{CLUSTER_TAG}={name}"


class Ec2ConsoleLink(BaseOperatorLink):
    """ "EC2 console" button on launch tasks of AWS clusters: the URL recorded when the task launched."""

    name = "EC2 console"

    @property
    def xcom_key(self) -> str:
        return XCOM_EC2_CONSOLE_LINK

    @staticmethod
    def persist(context: Context, handle: dict[str, Any]) -> None:
        url = ec2_console_url(handle)
        if url:
            context["ti"].xcom_push(key=XCOM_EC2_CONSOLE_LINK, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk import BaseXCom

        value = BaseXCom.get_value(ti_key=ti_key, key=XCOM_EC2_CONSOLE_LINK)  # type: ignore[arg-type]
        return str(value) if value else ""
