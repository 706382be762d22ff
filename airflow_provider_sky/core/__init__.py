"""The provisioning core: spec parsing, clouds, SSH runner and jobs. It never imports Airflow.

Heavy parts (paramiko, the catalog) load lazily: importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_sky.core.errors import (
    ClusterMismatchError,
    ClusterNotFoundError,
    HostKeyMismatchError,
    SkyConfigError,
    SkyError,
)
from airflow_provider_sky.core.resources import Accelerator, Amount, Resources

if TYPE_CHECKING:
    from airflow_provider_sky.core.cluster import Cluster
    from airflow_provider_sky.core.handle import ClusterHandle, NodeInfo
    from airflow_provider_sky.core.spec import TaskSpec

__all__ = [
    "Accelerator",
    "Amount",
    "Cluster",
    "ClusterHandle",
    "ClusterMismatchError",
    "ClusterNotFoundError",
    "HostKeyMismatchError",
    "NodeInfo",
    "Resources",
    "SkyConfigError",
    "SkyError",
    "TaskSpec",
]

_LAZY = {
    "Cluster": "airflow_provider_sky.core.cluster",
    "ClusterHandle": "airflow_provider_sky.core.handle",
    "NodeInfo": "airflow_provider_sky.core.handle",
    "TaskSpec": "airflow_provider_sky.core.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
