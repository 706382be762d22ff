"""The cluster handle: a JSON-serialisable record of a launched cluster.

It travels through XCom between tasks, so it holds no secrets: the private key
is supplied again by whoever rebuilds a :class:`~airflow_provider_sky.core.cluster.Cluster`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sky.core.errors import SkyConfigError

HANDLE_VERSION = 1


@dataclass
class NodeInfo:
    """One node, in rank order. ``host_key`` is ``<type> <base64>``, pinned at first contact."""

    rank: int
    node_id: str
    ip: str
    ssh_port: int = 22
    ssh_user: str = "root"
    host_key: str | None = None
    internal_ip: str | None = None

    @property
    def known_hosts_name(self) -> str:
        """The host name as OpenSSH's known_hosts writes it (``[ip]:port`` off port 22)."""
        return self.ip if self.ssh_port == 22 else f"[{self.ip}]:{self.ssh_port}"


@dataclass
class ClusterHandle:
    """Everything needed to reach a cluster from another process."""

    cluster_name: str
    cloud: str
    nodes: list[NodeInfo]
    region: str | None = None
    zone: str | None = None
    launched_at: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    hourly_price: float = 0.0
    remote_root: str = ".sky-airflow"
    cloud_settings: dict[str, Any] = field(default_factory=dict)
    version: int = HANDLE_VERSION

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ClusterHandle:
        """Rebuild a handle; a malformed one raises :class:`SkyConfigError` naming the field."""
        if isinstance(data, ClusterHandle):
            return data
        if not isinstance(data, dict):
            raise SkyConfigError(
                f"cluster handle: expected a dict as returned by the launch task, got {type(data).__name__}"
            )
        missing = [key for key in ("cluster_name", "cloud", "nodes") if key not in data]
        if missing:
            raise SkyConfigError(f"cluster handle: missing key(s) {', '.join(missing)}; is this a launch output?")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SkyConfigError(f"cluster handle: unknown key(s) {', '.join(unknown)}")
        if not isinstance(data["nodes"], list) or not data["nodes"]:
            raise SkyConfigError("cluster handle.nodes: expected a non-empty list of node dicts")
        nodes = []
        node_fields = {f.name for f in dataclasses.fields(NodeInfo)}
        for index, node in enumerate(data["nodes"]):
            if not isinstance(node, dict) or not {"rank", "node_id", "ip"} <= set(node) or set(node) - node_fields:
                raise SkyConfigError(
                    f"cluster handle.nodes[{index}]: expected a dict with rank, node_id, ip "
                    f"(and optional {', '.join(sorted(node_fields - {'rank', 'node_id', 'ip'}))}), got {node!r:.200}"
                )
            nodes.append(NodeInfo(**node))
        values = {key: value for key, value in data.items() if key != "nodes"}
        return cls(nodes=nodes, **values)
