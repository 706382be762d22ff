"""The local cloud: every node is a private sshd on this machine.

Node ``r`` listens on loopback address ``127.0.0.<r+1>`` (all of 127/8 reaches
``lo`` on Linux), so ``SKYPILOT_NODE_IPS`` lists distinct addresses as on a real
cluster. State lives under ``$SKY_AIRFLOW_HOME/local/<cluster>/`` so that a cluster
launched by one task process is found by the next; a file lock per cluster makes
concurrent launches and teardowns of one name safe.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_sky.core.clouds.base import (
    Cloud,
    ClusterRecord,
    ClusterStatus,
    check_cluster_name,
)
from airflow_provider_sky.core.errors import ClusterMismatchError, SkyConfigError, SkyError
from airflow_provider_sky.core.handle import ClusterHandle, NodeInfo
from airflow_provider_sky.core.keys import generate_private_key, public_key_line
from airflow_provider_sky.core.paths import sky_home
from airflow_provider_sky.core.resources import Resources
from airflow_provider_sky.core.sshd import PortInUseError, SshdNode, free_port

log = logging.getLogger(__name__)

MAX_NODES = 250
PORT_ATTEMPTS = 8


def node_address(rank: int) -> str:
    return f"127.0.0.{rank + 1}"


class LocalCloud(Cloud):
    """Nodes are sshd processes on this machine, run as the current user."""

    name = "local"
    supports_stop = True

    @property
    def root(self) -> Path:
        return sky_home() / "local"

    def _cluster_dir(self, name: str) -> Path:
        return self.root / check_cluster_name(name)

    def _record_path(self, name: str) -> Path:
        return self._cluster_dir(name) / "cluster.json"

    def _nodes(self, name: str, count: int) -> list[SshdNode]:
        return [SshdNode(self._cluster_dir(name) / f"node-{rank}") for rank in range(count)]

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{check_cluster_name(name)}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_record(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._record_path(name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SkyError(
                f"local cluster {name!r}: state file {self._record_path(name)} is unreadable: {exc}"
            ) from exc

    def _write_record(self, name: str, record: dict[str, Any]) -> None:
        path = self._record_path(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, path)

    def check_resources(self, resources: Resources, num_nodes: int) -> None:
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or not 1 <= num_nodes <= MAX_NODES:
            raise SkyConfigError(f"num_nodes: invalid value {num_nodes!r}; accepted: an integer from 1 to {MAX_NODES}")
        for candidate in resources.candidates()[0]:
            if candidate.accelerators:
                raise SkyConfigError(
                    f"resources.accelerators: the local cloud has no accelerators (asked {candidate.accelerators[0]}); "
                    "drop them or choose a cloud that has them"
                )
            if candidate.instance_type:
                raise SkyConfigError("resources.instance_type: the local cloud has no instance types; leave it unset")
            if candidate.use_spot:
                raise SkyConfigError("resources.use_spot: the local cloud has no spot nodes; leave it unset")
            if candidate.cloud not in (None, "local"):
                raise SkyConfigError(
                    f"resources.cloud: the request pins cloud {candidate.cloud!r} but cloud='local' was chosen"
                )
            for field_name in ("region", "zone"):
                if getattr(candidate, field_name) not in (None, "local"):
                    raise SkyConfigError(
                        f"resources.{field_name}: the local cloud has no {field_name}s; leave it unset"
                    )

    def launch(self, name: str, resources: Resources, num_nodes: int) -> ClusterHandle:
        self.check_resources(resources, num_nodes)
        with self._locked(name):
            record = self._read_record(name)
            if record is not None:
                return self._reuse(name, record, resources, num_nodes)
            return self._create(name, resources, num_nodes)

    def _reuse(self, name: str, record: dict[str, Any], resources: Resources, num_nodes: int) -> ClusterHandle:
        handle = ClusterHandle.from_dict(record["handle"])
        if handle.num_nodes != num_nodes or handle.resources != resources.to_dict():
            raise ClusterMismatchError(
                f"cluster {name!r} already exists with {handle.num_nodes} node(s) and resources {handle.resources}, "
                f"but {num_nodes} node(s) with {resources.to_dict()} were requested; tear it down first or use "
                "another cluster_name"
            )
        if record.get("public_key") != public_key_line(self.credentials.private_key):
            raise ClusterMismatchError(
                f"cluster {name!r} already exists and was launched with another SSH key; tear it down first"
            )
        log.info("Reusing live local cluster %r (%d node(s))", name, num_nodes)
        return self._ensure_running(name, record)

    def _create(self, name: str, resources: Resources, num_nodes: int) -> ClusterHandle:
        user = getpass.getuser()
        public_key = public_key_line(self.credentials.private_key)
        nodes = []
        for rank, sshd in enumerate(self._nodes(name, num_nodes)):
            host_private = generate_private_key()
            sshd.prepare(public_key, host_private)
            host_key = " ".join(public_key_line(host_private).split()[:2])
            nodes.append(
                NodeInfo(
                    rank=rank,
                    node_id=f"{name}-{rank}",
                    ip=node_address(rank),
                    ssh_port=0,
                    ssh_user=user,
                    host_key=host_key,
                    internal_ip=node_address(rank),
                )
            )
        handle = ClusterHandle(
            cluster_name=name,
            cloud=self.name,
            region="local",
            zone=None,
            nodes=nodes,
            launched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            resources=resources.to_dict(),
            hourly_price=0.0,
        )
        # Recorded before anything starts, so teardown finds a half-launched cluster.
        record = {"status": ClusterStatus.INIT.value, "public_key": public_key, "handle": handle.to_dict()}
        self._write_record(name, record)
        log.info("Launching local cluster %r with %d node(s)", name, num_nodes)
        try:
            return self._ensure_running(name, record)
        except BaseException:
            self._teardown_locked(name)
            raise

    def _ensure_running(self, name: str, record: dict[str, Any]) -> ClusterHandle:
        handle = ClusterHandle.from_dict(record["handle"])
        sshds = self._nodes(name, handle.num_nodes)

        def start(rank: int) -> int:
            sshd, node = sshds[rank], handle.nodes[rank]
            if node.ssh_port and sshd.is_running():
                return node.ssh_port
            for _attempt in range(PORT_ATTEMPTS):
                port = node.ssh_port or free_port(node.ip)
                try:
                    sshd.start(node.ip, port)
                    return port
                except PortInUseError:
                    node.ssh_port = 0  # taken by someone else meanwhile: pick another
            raise SkyError(f"node {rank} of {name!r}: no free port after {PORT_ATTEMPTS} attempts")

        with ThreadPoolExecutor(max_workers=min(16, handle.num_nodes)) as pool:
            ports = list(pool.map(start, range(handle.num_nodes)))
        for node, port in zip(handle.nodes, ports, strict=True):
            node.ssh_port = port
        record["handle"] = handle.to_dict()
        record["status"] = ClusterStatus.UP.value
        self._write_record(name, record)
        return handle

    def status(self, name: str) -> ClusterStatus | None:
        record = self._read_record(name)
        if record is None:
            return None
        if record["status"] == ClusterStatus.STOPPED.value:
            return ClusterStatus.STOPPED
        handle = ClusterHandle.from_dict(record["handle"])
        if record["status"] == ClusterStatus.UP.value and all(
            sshd.is_running() for sshd in self._nodes(name, handle.num_nodes)
        ):
            return ClusterStatus.UP
        return ClusterStatus.INIT

    def get_handle(self, name: str) -> ClusterHandle | None:
        record = self._read_record(name)
        return None if record is None else ClusterHandle.from_dict(record["handle"])

    def teardown(self, name: str) -> None:
        with self._locked(name):
            self._teardown_locked(name)

    def _teardown_locked(self, name: str) -> None:
        directory = self._cluster_dir(name)
        if not directory.exists():
            return
        node_dirs = sorted(directory.glob("node-*"))
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(node_dirs)))) as pool:
            list(pool.map(lambda d: SshdNode(d).stop(), node_dirs))
        shutil.rmtree(directory, ignore_errors=True)
        log.info("Local cluster %r is gone", name)

    def stop(self, name: str) -> None:
        with self._locked(name):
            record = self._read_record(name)
            if record is None:
                return
            handle = ClusterHandle.from_dict(record["handle"])
            for sshd in self._nodes(name, handle.num_nodes):
                sshd.stop()
            record["status"] = ClusterStatus.STOPPED.value
            self._write_record(name, record)

    def start(self, name: str) -> ClusterHandle:
        with self._locked(name):
            record = self._read_record(name)
            if record is None:
                raise SkyConfigError(f"cluster_name: no local cluster named {name!r} to start")
            return self._ensure_running(name, record)

    def list_clusters(self) -> list[ClusterRecord]:
        if not self.root.exists():
            return []
        records = []
        for path in sorted(self.root.glob("*/cluster.json")):
            name = path.parent.name
            status = self.status(name)
            handle = self.get_handle(name)
            if status is not None and handle is not None:
                records.append(ClusterRecord(name, status, handle.num_nodes))
        return records
