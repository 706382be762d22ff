"""The SSH-pool cloud: clusters made of existing hosts.

The hosts themselves are the truth about who owns them: a cluster claims a host
by creating the symlink ``~/.sky-airflow-claim -> <cluster name>`` there.
Creating a symlink is atomic, so two clusters (even launched from different
machines) never share a host, and a lost local record cannot leak a claim.
Host keys are pinned at first contact in ``$SKY_AIRFLOW_HOME/ssh/known_hosts.json``
(or given up front per host).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_sky.core import jobs
from airflow_provider_sky.core.clouds.base import (
    Cloud,
    ClusterRecord,
    ClusterStatus,
    SshCredentials,
    check_cluster_name,
)
from airflow_provider_sky.core.errors import (
    CapacityError,
    ClusterMismatchError,
    HostKeyMismatchError,
    SkyConfigError,
    SkyError,
)
from airflow_provider_sky.core.handle import ClusterHandle, NodeInfo
from airflow_provider_sky.core.paths import sky_home
from airflow_provider_sky.core.resources import Resources
from airflow_provider_sky.core.runner import NodeConnection, SshRunner, wrap_command

log = logging.getLogger(__name__)

CLAIM = ".sky-airflow-claim"
REMOTE_ROOT = ".sky-airflow"
HOST_FORM = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[^:@\s]+)(?::(?P<port>\d+))?$")
ACCEPTED_HOST_FORMS = "'host', 'user@host', 'user@host:port', or {host: ..., port: 22, user: ..., host_key: ...}"


@dataclass(frozen=True)
class PoolHost:
    host: str
    port: int = 22
    user: str | None = None
    host_key: str | None = None

    @property
    def key(self) -> str:
        return f"[{self.host}]:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "host_key": self.host_key}


def parse_hosts(value: Any, path: str = "hosts") -> list[PoolHost]:
    """Parse the pool's host list; one :class:`SkyConfigError` naming the entry for anything wrong."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,]+", value) if part]
    if not isinstance(value, list | tuple) or not value:
        raise SkyConfigError(
            f"{path}: expected a non-empty list of hosts; accepted forms per host: {ACCEPTED_HOST_FORMS}"
        )
    hosts = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if isinstance(item, str):
            match = HOST_FORM.match(item.strip())
            if not match:
                raise SkyConfigError(f"{where}: invalid host {item!r}; accepted: {ACCEPTED_HOST_FORMS}")
            port = int(match["port"] or 22)
            hosts.append(PoolHost(match["host"], port, match["user"]))
        elif isinstance(item, dict):
            unknown = set(item) - {"host", "port", "user", "host_key"}
            if unknown or not isinstance(item.get("host"), str) or not item["host"]:
                raise SkyConfigError(f"{where}: invalid host {item!r:.200}; accepted: {ACCEPTED_HOST_FORMS}")
            port = item.get("port", 22)
            if isinstance(port, str) and port.isdigit():
                port = int(port)
            if not isinstance(port, int) or isinstance(port, bool):
                raise SkyConfigError(f"{where}.port: invalid value {port!r}; accepted: an integer 1-65535")
            host_key = item.get("host_key")
            if host_key is not None and (not isinstance(host_key, str) or len(host_key.split()) < 2):
                raise SkyConfigError(f"{where}.host_key: accepted: '<type> <base64>' as in known_hosts")
            hosts.append(
                PoolHost(item["host"], port, item.get("user"), " ".join(host_key.split()[:2]) if host_key else None)
            )
        else:
            raise SkyConfigError(f"{where}: invalid host {item!r:.200}; accepted: {ACCEPTED_HOST_FORMS}")
        if not 1 <= hosts[-1].port <= 65535:
            raise SkyConfigError(f"{where}.port: invalid value {hosts[-1].port}; accepted: an integer 1-65535")
    keys = [h.key for h in hosts]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise SkyConfigError(f"{path}: host(s) listed twice: {', '.join(duplicates)}")
    return hosts


class SshPoolCloud(Cloud):
    """Clusters claimed from a fixed list of existing SSH hosts.

    :param hosts: the pool (see :func:`parse_hosts`).
    """

    name = "ssh"
    supports_stop = False

    def __init__(self, credentials: SshCredentials, hosts: Any = None, **settings: Any) -> None:
        super().__init__(credentials, **settings)
        self.hosts = parse_hosts(hosts) if hosts is not None else []
        self.default_user = credentials.user or getpass.getuser()

    # -- local bookkeeping ----------------------------------------------------------------

    @property
    def root(self) -> Path:
        return sky_home() / "ssh"

    def _known_hosts_path(self) -> Path:
        return self.root / "known_hosts.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _pinned(self) -> dict[str, str]:
        try:
            return json.loads(self._known_hosts_path().read_text())
        except FileNotFoundError:
            return {}

    def record_host_key(self, cluster_name: str, node: NodeInfo) -> None:
        """Remember a key pinned at first contact, for every later cluster on that host."""
        del cluster_name
        with self._locked():
            pinned = self._pinned()
            pinned.setdefault(PoolHost(node.ip, node.ssh_port).key, node.host_key or "")
            tmp = self._known_hosts_path().with_suffix(".tmp")
            tmp.write_text(json.dumps(pinned, indent=1))
            os.replace(tmp, self._known_hosts_path())

    def _record_path(self, name: str) -> Path:
        return self.root / "clusters" / f"{check_cluster_name(name)}.json"

    # -- talking to hosts -----------------------------------------------------------------

    def _require_hosts(self) -> list[PoolHost]:
        if not self.hosts:
            raise SkyConfigError(
                f"hosts: the ssh cloud needs the pool's hosts; accepted forms per host: {ACCEPTED_HOST_FORMS}"
            )
        return self.hosts

    def _node(self, rank: int, host: PoolHost) -> NodeInfo:
        pinned = host.host_key or self._pinned().get(host.key)
        return NodeInfo(
            rank=rank,
            node_id=f"{host.user or self.default_user}@{host.host}:{host.port}",
            ip=host.host,
            ssh_port=host.port,
            ssh_user=host.user or self.default_user,
            host_key=pinned,
            internal_ip=host.host,
        )

    def _runner(self, nodes: list[NodeInfo]) -> SshRunner:
        return SshRunner(nodes, self.credentials.private_key, connect_timeout=10.0, on_host_key=self._pin)

    def _pin(self, node: NodeInfo) -> None:
        self.record_host_key("", node)

    def _owners(self, hosts: list[PoolHost]) -> list[tuple[str | None, str | None]]:
        """For each host: (owner cluster or None, error text or None)."""
        nodes = [self._node(i, h) for i, h in enumerate(hosts)]
        runner = self._runner(nodes)

        def read(conn: NodeConnection) -> tuple[str | None, str | None]:
            try:
                result = conn.run(wrap_command(f"readlink {CLAIM} || true"), timeout=30)
            except HostKeyMismatchError:
                raise
            except SkyError as exc:
                return None, str(exc)
            return (result.stdout.strip() or None), None

        try:
            return runner.map(read)
        finally:
            runner.close()

    # -- Cloud interface ------------------------------------------------------------------

    def check_resources(self, resources: Resources, num_nodes: int) -> None:
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
            raise SkyConfigError(f"num_nodes: invalid value {num_nodes!r}; accepted: a positive integer")
        if self.hosts and num_nodes > len(self.hosts):
            raise SkyConfigError(f"num_nodes: {num_nodes} asked but the SSH pool has only {len(self.hosts)} host(s)")
        for candidate in resources.candidates()[0]:
            if candidate.instance_type or candidate.use_spot:
                raise SkyConfigError(
                    "resources: the ssh cloud uses existing hosts; instance_type and use_spot do not apply"
                )
            if candidate.cloud not in (None, "ssh"):
                raise SkyConfigError(
                    f"resources.cloud: the request pins cloud {candidate.cloud!r} but cloud='ssh' was chosen"
                )

    def launch(self, name: str, resources: Resources, num_nodes: int) -> ClusterHandle:
        check_cluster_name(name)
        hosts = self._require_hosts()
        self.check_resources(resources, num_nodes)
        if resources.cpus or resources.memory or resources.accelerators:
            log.warning(
                "The ssh cloud does not check hosts against cpus/memory/accelerators; it uses the pool as given"
            )
        owners = self._owners(hosts)
        mine = [h for h, (owner, _) in zip(hosts, owners, strict=True) if owner == name]
        if mine:
            if len(mine) != num_nodes:
                raise ClusterMismatchError(
                    f"cluster {name!r} already holds {len(mine)} host(s) of the pool but {num_nodes} were requested; "
                    "tear it down first or use another cluster_name"
                )
            log.info("Reusing cluster %r on %d claimed host(s)", name, len(mine))
            return self._save(name, mine, resources)
        claimed: list[PoolHost] = []
        reasons: list[str] = []
        free = []
        for host, (owner, error) in zip(hosts, owners, strict=True):
            if error:
                reasons.append(f"{host.key}: unreachable ({error})")
            elif owner:
                reasons.append(f"{host.key}: held by cluster {owner!r}")
            else:
                free.append(host)
        runner = self._runner([self._node(i, h) for i, h in enumerate(free)])
        try:
            for conn, host in zip(runner.connections, free, strict=True):
                if len(claimed) == num_nodes:
                    break
                claim = f"ln -s {shlex.quote(name)} {CLAIM} && mkdir -p {REMOTE_ROOT}"
                if conn.run(wrap_command(claim), timeout=30).exit_code == 0:
                    claimed.append(host)
                else:
                    reasons.append(f"{host.key}: claimed by another cluster meanwhile")
        finally:
            runner.close()
        if len(claimed) < num_nodes:
            self._release(name, claimed)
            raise CapacityError(
                f"ssh pool: cluster {name!r} needs {num_nodes} free host(s), found {len(claimed)}; "
                + "; ".join(reasons)
            )
        log.info("Claimed %d host(s) for cluster %r", num_nodes, name)
        return self._save(name, claimed, resources)

    def _save(self, name: str, hosts: list[PoolHost], resources: Resources) -> ClusterHandle:
        handle = ClusterHandle(
            cluster_name=name,
            cloud=self.name,
            nodes=[self._node(rank, host) for rank, host in enumerate(hosts)],
            region=None,
            zone=None,
            launched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            resources=resources.to_dict(),
            hourly_price=0.0,
            remote_root=REMOTE_ROOT,
            cloud_settings={"hosts": [h.to_dict() for h in self.hosts]},
        )
        path = self._record_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(handle.to_dict(), indent=1))
        return handle

    def _release(self, name: str, hosts: list[PoolHost]) -> None:
        """Kill the cluster's jobs, remove its work directories and drop its claims."""
        if not hosts:
            return
        quoted = shlex.quote(name)
        script = (
            f'if [ "$(readlink {CLAIM})" = {quoted} ]; then '
            f"{jobs.kill_all_jobs_command(REMOTE_ROOT)}; "
            f"rm -rf {REMOTE_ROOT} {jobs.WORKDIR}; rm -f {CLAIM}; fi"
        )
        runner = self._runner([self._node(i, h) for i, h in enumerate(hosts)])
        try:
            result = runner.run(wrap_command(script), timeout=120)
        finally:
            runner.close()
        failed = [hosts[r.rank].key for r in result.results if r.exit_code != 0]
        if failed:
            raise SkyError(f"ssh pool: could not release host(s) {', '.join(failed)} of cluster {name!r}")

    def status(self, name: str) -> ClusterStatus | None:
        owners = self._owners(self._require_hosts())
        count = sum(1 for owner, _ in owners if owner == name)
        if count == 0:
            return None
        record = self.get_recorded_handle(name)
        if record is not None and record.num_nodes != count:
            return ClusterStatus.INIT
        return ClusterStatus.UP

    def get_recorded_handle(self, name: str) -> ClusterHandle | None:
        try:
            return ClusterHandle.from_dict(json.loads(self._record_path(name).read_text()))
        except FileNotFoundError:
            return None

    def get_handle(self, name: str) -> ClusterHandle | None:
        hosts = self._require_hosts()
        owners = self._owners(hosts)
        mine = [h for h, (owner, _) in zip(hosts, owners, strict=True) if owner == name]
        if not mine:
            return None
        record = self.get_recorded_handle(name)
        if record is not None and [n.node_id for n in record.nodes] == [self._node(0, h).node_id for h in mine]:
            return record
        return self._save(name, mine, Resources())

    def teardown(self, name: str) -> None:
        check_cluster_name(name)
        hosts = list(self.hosts)
        record = self.get_recorded_handle(name)
        if record is not None:
            known = {h.key for h in hosts}
            for node in record.nodes:
                host = PoolHost(node.ip, node.ssh_port, node.ssh_user, node.host_key)
                if host.key not in known:
                    hosts.append(host)
        if hosts:
            owners = self._owners(hosts)
            unreachable = [h.key for h, (_, error) in zip(hosts, owners, strict=True) if error]
            mine = [h for h, (owner, _) in zip(hosts, owners, strict=True) if owner == name]
            self._release(name, mine)
            if (
                unreachable
                and record is not None
                and any(f"[{n.ip}]:{n.ssh_port}" in unreachable for n in record.nodes)
            ):
                raise SkyError(
                    f"ssh pool: host(s) {', '.join(unreachable)} of cluster {name!r} are unreachable; "
                    "their claims could not be released (run the teardown again when they are back)"
                )
        self._record_path(name).unlink(missing_ok=True)
        log.info("Released cluster %r", name)

    def list_clusters(self) -> list[ClusterRecord]:
        owners = self._owners(self._require_hosts())
        counts: dict[str, int] = {}
        for owner, _ in owners:
            if owner:
                counts[owner] = counts.get(owner, 0) + 1
        return [ClusterRecord(name, ClusterStatus.UP, count) for name, count in sorted(counts.items())]
