"""Clouds, one module each behind :class:`~airflow_provider_sky.core.clouds.base.Cloud`.

Modules load lazily so that naming a cloud never imports another cloud's SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow_provider_sky.core.clouds.base import Cloud, ClusterRecord, ClusterStatus, SshCredentials
from airflow_provider_sky.core.errors import SkyConfigError

__all__ = ["CLOUDS", "Cloud", "ClusterRecord", "ClusterStatus", "SshCredentials", "check_cloud_name", "get_cloud"]

#: cloud name -> "module:Class"; clouds of later issues are listed in PLANNED.
CLOUDS = {
    "local": "airflow_provider_sky.core.clouds.local:LocalCloud",
    "ssh": "airflow_provider_sky.core.clouds.ssh_pool:SshPoolCloud",
    "aws": "airflow_provider_sky.core.clouds.aws:AwsCloud",
}
PLANNED = ("gcp", "kubernetes")
ALIASES = {"k8s": "kubernetes"}


def check_cloud_name(name: object, path: str = "cloud") -> str:
    """The canonical cloud name, or a :class:`SkyConfigError` listing the accepted ones."""
    if not isinstance(name, str):
        raise SkyConfigError(
            f"{path}: expected a cloud name string, got {type(name).__name__}; accepted: {', '.join(CLOUDS)}"
        )
    canonical = ALIASES.get(name.strip().lower(), name.strip().lower())
    if canonical in CLOUDS:
        return canonical
    if canonical in PLANNED:
        raise SkyConfigError(f"{path}: cloud {name!r} is not supported yet; available: {', '.join(CLOUDS)}")
    raise SkyConfigError(f"{path}: unknown cloud {name!r}; accepted: {', '.join(CLOUDS)}")


def get_cloud(name: str, credentials: SshCredentials, **settings: Any) -> Cloud:
    """Instantiate a cloud by name with its credentials and settings."""
    module_name, class_name = CLOUDS[check_cloud_name(name)].split(":")
    cloud_class = getattr(importlib.import_module(module_name), class_name)
    return cloud_class(credentials, **settings)
