"""The interface every cloud implements."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.handle import ClusterHandle
from airflow_provider_sky.core.resources import Resources

CLUSTER_NAME = re.compile(r"^[a-zA-Z]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$")


def check_cluster_name(name: object) -> str:
    if not isinstance(name, str) or not CLUSTER_NAME.match(name):
        raise SkyConfigError(
            f"cluster_name: invalid value {name!r:.80}; accepted: 1-63 characters, letters, digits, '-', '_' "
            "and '.', starting with a letter and ending with a letter or digit (e.g. 'train-20260101')"
        )
    return name


@dataclass(frozen=True)
class SshCredentials:
    """How to log in to nodes: the private key text and, where the cloud does not fix it, the user."""

    private_key: str
    user: str | None = None

    def __repr__(self) -> str:  # never show the key in logs or tracebacks
        return f"SshCredentials(user={self.user!r}, private_key=<hidden>)"


class ClusterStatus(str, Enum):
    INIT = "INIT"  # some nodes exist but the cluster is not fully up
    UP = "UP"
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    status: ClusterStatus
    num_nodes: int


class Cloud(ABC):
    """One cloud. ``launch`` is idempotent by name; ``teardown`` of a missing cluster succeeds."""

    name: str = ""
    supports_stop: bool = False

    def __init__(self, credentials: SshCredentials, **settings: Any) -> None:
        self.credentials = credentials
        self.settings = settings

    def check_resources(self, resources: Resources, num_nodes: int) -> None:
        """Raise :class:`SkyConfigError` for requests this cloud can never satisfy (before creating anything)."""

    @abstractmethod
    def launch(self, name: str, resources: Resources, num_nodes: int) -> ClusterHandle:
        """Create the cluster, or return the live one of that name if it fits the request."""

    @abstractmethod
    def status(self, name: str) -> ClusterStatus | None:
        """The cluster's status, or None when it does not exist."""

    @abstractmethod
    def teardown(self, name: str) -> None:
        """Delete every resource of the cluster and wait until it is gone."""

    @abstractmethod
    def list_clusters(self) -> list[ClusterRecord]:
        """Clusters this cloud knows of (for this credentials' scope)."""

    def get_handle(self, name: str) -> ClusterHandle | None:
        """The handle of a live cluster, rebuilt from the cloud's own records."""
        return None

    def stop(self, name: str) -> None:
        raise SkyConfigError(f"cloud {self.name!r} cannot stop clusters; use teardown (action='down')")

    def start(self, name: str) -> ClusterHandle:
        raise SkyConfigError(f"cloud {self.name!r} cannot start stopped clusters")
