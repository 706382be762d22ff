"""The one object callers use: launch or find a cluster, run commands and jobs on it, tear it down."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_sky.core import jobs
from airflow_provider_sky.core.clouds import SshCredentials, check_cloud_name, get_cloud
from airflow_provider_sky.core.clouds.base import Cloud, ClusterStatus, check_cluster_name
from airflow_provider_sky.core.errors import (
    ClusterNotFoundError,
    HostKeyMismatchError,
    JobNotFoundError,
    SkyConfigError,
    SkyError,
    SshConnectError,
)
from airflow_provider_sky.core.handle import ClusterHandle, NodeInfo
from airflow_provider_sky.core.resources import Resources
from airflow_provider_sky.core.runner import LineCallback, RunResult, SshRunner, probe_tcp, wrap_command

if TYPE_CHECKING:
    from airflow_provider_sky.core.spec import FileMount
    from airflow_provider_sky.core.transfer import Transfer, TransferStats

log = logging.getLogger(__name__)

DEFAULT_LOG_CHUNK = 1 << 20


class LogChunk(NamedTuple):
    """New log output of a job: node-prefixed complete lines, and the offsets to ask from next time."""

    data: bytes
    offset: list[int]

    @property
    def lines(self) -> list[str]:
        return self.data.decode("utf-8", "replace").splitlines()


def _as_resources(resources: Resources | Mapping[str, Any] | None) -> Resources:
    if resources is None:
        return Resources()
    if isinstance(resources, Resources):
        return resources
    from airflow_provider_sky.core.spec import parse_resources

    return parse_resources(dict(resources))


def _credentials(cloud: str, ssh_private_key: str | None, ssh_user: str | None) -> SshCredentials:
    if ssh_private_key is None:
        if cloud != "local":
            raise SkyConfigError(
                f"ssh_private_key: required for cloud {cloud!r}; give the key of the account that may log in "
                "(from an Airflow connection or secret backend)"
            )
        from airflow_provider_sky.core.keys import default_private_key

        ssh_private_key = default_private_key()
    return SshCredentials(private_key=ssh_private_key, user=ssh_user)


def _env_values(envs: Mapping[str, Any] | None) -> dict[str, str]:
    """Stringify env values; a None value is a required env the task left unset."""
    missing = sorted(str(k) for k, v in (envs or {}).items() if v is None)
    if missing:
        raise SkyConfigError(
            f"envs: no value for required variable(s) {', '.join(missing)} (null in the task); give them at launch"
        )
    return {str(k): v if isinstance(v, str) else str(v) for k, v in (envs or {}).items()}


class Cluster:
    """A launched cluster: its handle plus the means to reach it.

    Build one with :meth:`launch`, :meth:`from_handle` or :meth:`get`. The private key
    is never part of the handle; every process that rebuilds a cluster supplies it.
    """

    def __init__(self, handle: ClusterHandle, cloud: Cloud, *, connect_timeout: float = 10.0) -> None:
        self.handle = handle
        self.cloud = cloud
        self.connect_timeout = connect_timeout
        self._runner: SshRunner | None = None
        self._transfer: Transfer | None = None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def launch(
        cls,
        name: str,
        cloud: str = "local",
        resources: Resources | Mapping[str, Any] | None = None,
        num_nodes: int = 1,
        *,
        ssh_private_key: str | None = None,
        ssh_user: str | None = None,
        connect_timeout: float = 10.0,
        **cloud_settings: Any,
    ) -> Cluster:
        """Launch ``name`` on ``cloud``, or reuse the live cluster of that name.

        :param name: cluster name; the identity that makes launching idempotent.
        :param cloud: ``local`` or ``ssh`` (an SSH pool; pass ``hosts=[...]``).
        :param resources: a :class:`Resources` or a dict in the task-YAML ``resources`` form.
        :param num_nodes: how many nodes.
        :param ssh_private_key: private key text (the local cloud generates one when omitted).
        :param ssh_user: login user where the cloud does not fix it.
        """
        check_cluster_name(name)
        cloud_name = check_cloud_name(cloud)
        request = _as_resources(resources)
        impl = get_cloud(cloud_name, _credentials(cloud_name, ssh_private_key, ssh_user), **cloud_settings)
        impl.check_resources(request, num_nodes)
        handle = impl.launch(name, request, num_nodes)
        return cls(handle, impl, connect_timeout=connect_timeout)

    @classmethod
    def from_handle(
        cls,
        handle: ClusterHandle | Mapping[str, Any],
        *,
        ssh_private_key: str | None = None,
        ssh_user: str | None = None,
        connect_timeout: float = 10.0,
        **cloud_settings: Any,
    ) -> Cluster:
        """Rebuild a cluster from a handle (e.g. the launch task's XCom) in another process."""
        parsed = ClusterHandle.from_dict(dict(handle) if isinstance(handle, Mapping) else handle)
        settings = {**parsed.cloud_settings, **cloud_settings}
        impl = get_cloud(parsed.cloud, _credentials(parsed.cloud, ssh_private_key, ssh_user), **settings)
        return cls(parsed, impl, connect_timeout=connect_timeout)

    @classmethod
    def get(
        cls,
        name: str,
        cloud: str = "local",
        *,
        ssh_private_key: str | None = None,
        ssh_user: str | None = None,
        **cloud_settings: Any,
    ) -> Cluster | None:
        """The live cluster called ``name`` according to the cloud's own records, or None."""
        cloud_name = check_cloud_name(cloud)
        impl = get_cloud(cloud_name, _credentials(cloud_name, ssh_private_key, ssh_user), **cloud_settings)
        handle = impl.get_handle(check_cluster_name(name))
        return None if handle is None else cls(handle, impl)

    # -- properties ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.handle.cluster_name

    @property
    def nodes(self) -> list[NodeInfo]:
        return self.handle.nodes

    @property
    def runner(self) -> SshRunner:
        if self._runner is None:
            self._runner = SshRunner(
                self.handle.nodes,
                self.cloud.credentials.private_key,
                connect_timeout=self.connect_timeout,
                on_host_key=self._host_key_pinned,
            )
        return self._runner

    @property
    def transfer(self) -> Transfer:
        if self._transfer is None:
            from airflow_provider_sky.core.transfer import Transfer

            self._transfer = Transfer(self.runner, self.cloud.credentials.private_key)
        return self._transfer

    def _host_key_pinned(self, node: NodeInfo) -> None:
        record = getattr(self.cloud, "record_host_key", None)
        if record is not None:
            record(self.name, node)

    # -- lifecycle -----------------------------------------------------------------------

    def status(self) -> ClusterStatus | None:
        return self.cloud.status(self.name)

    def down(self) -> None:
        """Tear the cluster down; a cluster that is already gone is success."""
        self.close()
        self.cloud.teardown(self.name)

    def stop(self) -> None:
        self.close()
        self.cloud.stop(self.name)

    def start(self) -> Cluster:
        self.close()
        self.handle = self.cloud.start(self.name)
        return self

    def close(self) -> None:
        """Close connections and remove temporary key files (the cluster keeps running)."""
        if self._transfer is not None:
            self._transfer.close()
            self._transfer = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SSH readiness -------------------------------------------------------------------

    def ssh_ready_nodes(self) -> list[bool]:
        """One round: which nodes accept SSH with their pinned key and run ``true``.

        A host-key mismatch is raised, not reported as "not ready": waiting will not fix it.
        """

        def check(conn: Any) -> bool:
            node = conn.node
            if not probe_tcp(node.ip, node.ssh_port, timeout=min(1.0, self.connect_timeout)):
                return False
            try:
                return bool(conn.run("true", timeout=self.connect_timeout).exit_code == 0)
            except HostKeyMismatchError:
                raise
            except (SshConnectError, SkyError, OSError, EOFError) as exc:
                log.debug("node %d not ready yet: %s", node.rank, exc)
                conn.close()
                return False

        return self.runner.map(check)

    def wait_ssh_ready(self, timeout: float = 60.0, poll_interval: float = 0.2) -> Cluster:
        """Wait until every node is ready (see :meth:`ssh_ready_nodes`)."""
        deadline = time.monotonic() + timeout
        while True:
            ready = self.ssh_ready_nodes()
            if all(ready):
                return self
            if time.monotonic() > deadline:
                waiting = [str(rank) for rank, ok in enumerate(ready) if not ok]
                raise SshConnectError(
                    f"cluster {self.name!r}: node(s) {', '.join(waiting)} not reachable over SSH after {timeout:g}s"
                )
            time.sleep(poll_interval)

    # -- commands ------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        envs: Mapping[str, Any] | None = None,
        nodes: Sequence[int] | None = None,
        stream: LineCallback | None = None,
        timeout: float | None = None,
        cwd: str | None = None,
    ) -> RunResult:
        """Run a bash command on the chosen nodes (all by default), in parallel, and wait.

        :param envs: exported before the command; values arrive literally.
        :param stream: ``stream(rank, "stdout"|"stderr", line)`` for each line as it arrives.
        :param timeout: seconds per node before :class:`CommandTimeoutError`.
        """
        text = wrap_command(command, _env_values(envs), cwd)
        return self.runner.run(text, ranks=nodes, on_line=stream, timeout=timeout)

    def upload(
        self,
        local: str,
        remote: str,
        *,
        nodes: Sequence[int] | None = None,
        delete: bool = False,
        exclude: Sequence[str] = (),
    ) -> TransferStats:
        return self.transfer.upload(local, remote, ranks=nodes, delete=delete, exclude=exclude)

    def download(
        self, remote: str, local: str, *, node: int = 0, delete: bool = False, exclude: Sequence[str] = ()
    ) -> TransferStats:
        return self.transfer.download(remote, local, rank=node, delete=delete, exclude=exclude)

    def sync_workdir(self, workdir: str) -> TransferStats:
        """Mirror a local directory to ``~/sky_workdir`` on every node (extra remote files are removed)."""
        return self.upload(workdir, f"~/{jobs.WORKDIR}", delete=True)

    def sync_file_mounts(
        self, file_mounts: Mapping[str, str | FileMount], *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        """Copy ``file_mounts`` sources to every node: local paths over SSH, ``s3://`` through the S3 engine.

        :param storage_options: keyword arguments for :func:`airflow_provider_sky.core.storage.sync`
            (the S3 session or session factory, endpoint, secret masking); needed for ``s3://`` sources.
        """
        for remote, mount in file_mounts.items():
            source = mount if isinstance(mount, str) else mount.source
            if source.startswith("s3://"):
                if storage_options is None:
                    raise SkyConfigError(
                        f"file_mounts.{remote}: {source!r} needs S3 credentials; pass storage_options "
                        "(the operators build them from the AWS connection)"
                    )
                from airflow_provider_sky.core.storage import sync

                sync(source, f"cluster:{remote}", cluster=self, **storage_options)
            elif "://" in source:
                raise SkyConfigError(
                    f"file_mounts.{remote}: source {source!r} is not supported yet; accepted: a local path or s3://"
                )
            else:
                self.upload(source, remote)

    # -- detached jobs -------------------------------------------------------------------

    def submit(
        self,
        setup: str | None = None,
        run: str | None = None,
        envs: Mapping[str, Any] | None = None,
        *,
        job_id: str | None = None,
        workdir: str | None = None,
        file_mounts: Mapping[str, str | FileMount] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a job on every node, detached from this process; returns its id.

        Uploads ``workdir`` and local ``file_mounts`` first. Submitting an id that
        already exists starts nothing and returns it, so a retry cannot run a job twice.
        """
        if not setup and not run:
            raise SkyConfigError("submit: give setup, run or both (shell commands)")
        job_id = jobs.check_job_id(job_id) if job_id is not None else jobs.new_job_id()
        if workdir:
            self.sync_workdir(workdir)
        if file_mounts:
            self.sync_file_mounts(file_mounts, storage_options=storage_options)
        user_envs = _env_values(envs)
        node_ips = [node.internal_ip or node.ip for node in self.nodes]
        accelerator = _as_resources(self.handle.resources).accelerator if self.handle.resources else None
        gpus = math.ceil(accelerator.count) if accelerator else 0
        task_id = f"sky-airflow-{job_id}_{self.name}"

        def driver(rank: int) -> bytes:
            env = jobs.task_env(
                rank=rank,
                node_ips=node_ips,
                num_gpus_per_node=gpus,
                task_id=task_id,
                cluster_name=self.name,
                cloud=self.handle.cloud,
                region=self.handle.region,
                zone=self.handle.zone,
            )
            env.update(user_envs)
            return jobs.driver_script(setup=setup, run=run, envs=env, use_workdir=bool(workdir)).encode()

        result = self.runner.run(
            wrap_command(jobs.submit_command(self.handle.remote_root, job_id)),
            stdin=driver,
            timeout=60,
        )
        for res in result.results:
            if res.exit_code != 0:
                raise SkyError(f"submit: node {res.rank} could not start job {job_id}: {res.stderr.strip()[-500:]}")
        log.info("Submitted job %s to cluster %r (%d node(s))", job_id, self.name, len(self.nodes))
        return job_id

    def job_status(self, job_id: str) -> jobs.JobStatus:
        """The job's state over all nodes; :class:`JobNotFoundError` when no node knows it."""
        result = self.runner.run(wrap_command(jobs.status_command(self.handle.remote_root, job_id)), timeout=30)
        nodes = [jobs.parse_status_line(res.rank, res.stdout) for res in result.results]
        if all(res.stdout.strip() == "missing" for res in result.results):
            raise JobNotFoundError(f"cluster {self.name!r} has no job {job_id!r}")
        return jobs.combine(job_id, nodes)

    def tail_logs(
        self, job_id: str, offset: int | Sequence[int] = 0, *, max_bytes: int = DEFAULT_LOG_CHUNK, flush: bool = False
    ) -> LogChunk:
        """New output of a job since ``offset`` (0, or the offset of the previous chunk).

        Lines come prefixed with ``(node R)``. Only complete lines are returned, except that
        ``flush`` (use it once the job has finished) also returns a last unterminated line when
        the read reached the end of the log, and a single line longer than ``max_bytes`` is
        returned in pieces rather than blocking the reader.
        """
        count = len(self.nodes)
        offsets = [int(offset)] * count if isinstance(offset, int) else [int(o) for o in offset]
        if len(offsets) != count or any(o < 0 for o in offsets):
            raise SkyConfigError(f"offset: expected 0 or {count} non-negative integers, got {offset!r}")
        path = jobs.log_path(self.handle.remote_root, job_id)

        def read(conn: Any) -> bytes:
            try:
                with conn.sftp().open(path, "rb") as fh:
                    fh.seek(offsets[conn.node.rank])
                    return bytes(fh.read(max_bytes))
            except FileNotFoundError:
                return b""

        chunks = self.runner.map(read)
        out = bytearray()
        next_offsets = []
        for rank, (start, chunk) in enumerate(zip(offsets, chunks, strict=True)):
            at_end = len(chunk) < max_bytes
            cut = chunk.rfind(b"\n") + 1
            usable = chunk if (flush and at_end) or (cut == 0 and not at_end) else chunk[:cut]
            for line in usable.splitlines():
                out += f"(node {rank}) ".encode() + line + b"\n"
            next_offsets.append(start + len(usable))
        return LogChunk(bytes(out), next_offsets)

    def cancel(self, job_id: str) -> None:
        """Kill the job's whole process group on every node (a finished job is left as it is)."""
        self.runner.run(wrap_command(jobs.cancel_command(self.handle.remote_root, job_id)), timeout=60)
        log.info("Cancelled job %s on cluster %r", job_id, self.name)

    def wait_job(
        self,
        job_id: str,
        *,
        on_line: Callable[[str], None] | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        cancel_on_failure: bool = True,
    ) -> jobs.JobStatus:
        """Follow a job to its end, passing each node-prefixed log line to ``on_line``.

        When one node fails the others are cancelled (unless ``cancel_on_failure`` is off),
        as a multi-node job cannot succeed any more.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        offset: list[int] | int = 0
        while True:
            status = self.job_status(job_id)
            # Once finished, read until the logs stop growing: one read is capped at a chunk size.
            while True:
                chunk = self.tail_logs(job_id, offset, flush=status.state.finished)
                if on_line is not None:
                    for line in chunk.lines:
                        on_line(line)
                advanced = chunk.offset != ([offset] * len(self.nodes) if isinstance(offset, int) else offset)
                offset = chunk.offset
                if not (status.state.finished and advanced):
                    break
            if (
                status.state is jobs.JobState.FAILED
                and cancel_on_failure
                and not all(n.state.finished for n in status.nodes)
            ):
                self.cancel(job_id)
            if status.state.finished:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise SkyError(f"job {job_id} on {self.name!r} still running after {timeout:g}s")
            time.sleep(poll_interval)


def get_cluster_or_raise(name: str, cloud: str = "local", **kwargs: Any) -> Cluster:
    cluster = Cluster.get(name, cloud, **kwargs)
    if cluster is None:
        raise ClusterNotFoundError(f"no cluster named {name!r} on cloud {cloud!r}")
    return cluster
