"""Airflow's AWS connection turned into what the core's AWS cloud and S3 sync take.

The core never reads credentials: it is handed a ``boto3.Session`` (or a factory of one). This module
builds that session from the amazon provider's :class:`AwsBaseHook`, so every credential source the AWS
connection supports (keys, assumed roles, web identity, profiles, the instance role) works unchanged.
The amazon provider is imported only when a session is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from airflow.sdk.definitions.context import Context

DEFAULT_AWS_CONN_ID = "aws_default"


def aws_session_factory(aws_conn_id: str | None = DEFAULT_AWS_CONN_ID, region_name: str | None = None) -> Callable[
    [], boto3.Session
]:
    """A zero-argument callable returning the connection's ``boto3.Session`` (the core calls it on first use).

    :param aws_conn_id: the Airflow AWS connection (``None``: boto3's default chain, as ``AwsBaseHook`` does).
    :param region_name: overrides the connection's region.
    """

    def factory() -> boto3.Session:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        hook = AwsBaseHook(aws_conn_id=aws_conn_id, region_name=region_name)
        return hook.get_session(region_name=region_name)

    return factory


def aws_endpoint_url(aws_conn_id: str | None = DEFAULT_AWS_CONN_ID) -> str | None:
    """The ``endpoint_url`` extra of the AWS connection (an S3/EC2-compatible endpoint), if it sets one."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    endpoint = AwsBaseHook(aws_conn_id=aws_conn_id).conn_config.endpoint_url
    return str(endpoint) if endpoint else None


def airflow_tags(context: Context | Mapping[str, Any]) -> dict[str, Any]:
    """``dag_id``, ``run_id``, ``task_id`` and ``try_number`` of the running task, for the cloud's tags."""
    ti = context["ti"]
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": getattr(ti, "try_number", None),
    }


def aws_cloud_settings(
    context: Context | Mapping[str, Any] | None,
    aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
    region_name: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``Cluster.launch(..., cloud="aws", **settings)`` / ``Cluster.from_handle``.

    :param context: the task context (its task instance becomes the instances' Airflow tags), or None.
    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: overrides the connection's region for API calls.
    :param settings: further ``AwsCloud`` settings (``regions``, ``subnet_ids``, ``use_internal_ips``, ...).
    """
    out: dict[str, Any] = {"session_factory": aws_session_factory(aws_conn_id, region_name)}
    if "endpoint_url" not in settings:
        endpoint = aws_endpoint_url(aws_conn_id)
        if endpoint:
            out["endpoint_url"] = endpoint
    if context is not None:
        out["airflow_tags"] = airflow_tags(context)
    out.update(settings)
    return out


def mask_secret(value: str) -> None:
    """Register a secret with Airflow's masker (pass as ``on_secret=`` to the core's S3 sync)."""
    from airflow.sdk.log import mask_secret as airflow_mask_secret

    airflow_mask_secret(value)
