"""SkyHook: the ``sky`` connection turned into what the provisioning core needs to reach clusters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_sky.core.errors import SkyConfigError

if TYPE_CHECKING:
    from airflow_provider_sky.core.cluster import Cluster

DEFAULT_CONN_ID = "sky_default"


@dataclass(frozen=True)
class SkyCredentials:
    """What the core needs to log in. ``private_key`` None means the local cloud's generated key."""

    private_key: str | None = None
    ssh_user: str | None = None
    cloud: str = "local"
    hosts: list[str] | None = None
    cloud_connection: dict[str, Any] = field(default_factory=dict)
    #: Extra settings for the AWS cloud (``regions``, ``subnet_ids``, ``use_internal_ips``, ``ssh_cidr``, ...).
    aws: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the key must never reach a log line or a traceback
        return f"SkyCredentials(cloud={self.cloud!r}, ssh_user={self.ssh_user!r}, private_key=<hidden>)"

    def cloud_settings(self, cloud: str) -> dict[str, Any]:
        """Settings the core's cloud takes from the connection alone (the SSH pool's hosts)."""
        return {"hosts": self.hosts} if cloud == "ssh" and self.hosts else {}


def _split_hosts(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError:
            raise SkyConfigError("sky connection extra 'hosts': invalid JSON list") from None
        return [str(v) for v in loaded]
    return [part for part in text.replace(",", "\n").split() if part]


def _aws_extra(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SkyConfigError("sky connection extra 'aws': invalid JSON object") from None
    if not isinstance(value, dict):
        raise SkyConfigError("sky connection extra 'aws': expected an object such as {\"regions\": [\"us-east-1\"]}")
    return dict(value)


class SkyHook(BaseHook):
    """Credentials and cluster access for the Sky operators.

    The ``sky`` connection's extras are ``private_key`` (masked), ``ssh_user``, ``cloud`` (the default
    cloud), ``hosts`` (the SSH pool), ``cloud_conn_id`` (an Airflow connection with the cloud
    account's credentials, e.g. an AWS connection; default ``aws_default``) and ``aws`` (settings of
    the AWS cloud: ``regions``, ``subnet_ids``, ``use_internal_ips``, ``ssh_cidr``, ...).
    The connection's ``password`` and ``login`` are read as the private key and
    SSH user when the extras do not set them. When the connection does not exist, the local cloud still
    works with a key generated once under ``$SKY_AIRFLOW_HOME``; other clouds need the connection.

    :param sky_conn_id: id of the ``sky`` connection.
    :param cloud_conn_id: the cloud account's Airflow connection, overriding the connection's extra.
    """

    conn_name_attr = "sky_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "sky"
    hook_name = "Sky"

    def __init__(self, sky_conn_id: str = DEFAULT_CONN_ID, cloud_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sky_conn_id = sky_conn_id
        self._cloud_conn_id = cloud_conn_id
        self._credentials: SkyCredentials | None = None

    @property
    def aws_conn_id(self) -> str:
        """The Airflow AWS connection: the hook's argument, else the sky connection's ``cloud_conn_id``,
        else ``aws_default``."""
        from airflow_provider_sky.hooks.aws import DEFAULT_AWS_CONN_ID

        if self._cloud_conn_id:
            return self._cloud_conn_id
        return str(self.get_credentials().cloud_connection.get("conn_id") or DEFAULT_AWS_CONN_ID)

    def cloud_settings(self, cloud: str, context: Any = None) -> dict[str, Any]:
        """Everything the core's cloud needs besides the SSH key: pool hosts, or the AWS session
        (built from the AWS connection, never stored) and the task's tags for the instances."""
        creds = self.get_credentials()
        if cloud == "aws":
            from airflow_provider_sky.hooks.aws import aws_cloud_settings

            return aws_cloud_settings(context, self.aws_conn_id, **creds.aws)
        return creds.cloud_settings(cloud)

    def s3_options(self) -> dict[str, Any]:
        """Keyword arguments for the core's S3 sync: the session factory, endpoint and secret masking."""
        from airflow_provider_sky.hooks.aws import aws_endpoint_url, aws_session_factory, mask_secret

        options: dict[str, Any] = {"session_factory": aws_session_factory(self.aws_conn_id), "on_secret": mask_secret}
        endpoint = aws_endpoint_url(self.aws_conn_id)
        if endpoint:
            options["endpoint_url"] = endpoint
        return options

    def get_credentials(self) -> SkyCredentials:
        """Read the connection once; mask the private key in every later log line."""
        if self._credentials is not None:
            return self._credentials
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.sky_conn_id)
        except AirflowNotFoundException:
            self.log.info("Connection %r not found: the local cloud uses its generated key", self.sky_conn_id)
            self._credentials = SkyCredentials()
            return self._credentials
        extra = conn.extra_dejson or {}
        private_key = extra.get("private_key") or conn.password or None
        if private_key:
            from airflow.sdk.log import mask_secret

            private_key = str(private_key).replace("\\n", "\n")
            mask_secret(private_key)
        cloud = str(extra.get("cloud") or "local")
        cloud_connection: dict[str, Any] = {}
        if extra.get("cloud_conn_id"):
            cloud_conn = self.get_connection(str(extra["cloud_conn_id"]))
            cloud_connection = {"conn_id": cloud_conn.conn_id, "conn_type": cloud_conn.conn_type}
        self._credentials = SkyCredentials(
            private_key=private_key,
            ssh_user=extra.get("ssh_user") or conn.login or None,
            cloud=cloud,
            hosts=_split_hosts(extra.get("hosts")),
            cloud_connection=cloud_connection,
            aws=_aws_extra(extra.get("aws")),
        )
        return self._credentials

    def _require_key(self, cloud: str) -> str | None:
        creds = self.get_credentials()
        if creds.private_key is None and cloud != "local":
            raise SkyConfigError(
                f"sky_conn_id: connection {self.sky_conn_id!r} gives no SSH private key, which cloud {cloud!r} "
                "needs; set its 'private_key' extra"
            )
        return creds.private_key

    def launch(
        self, name: str, cloud: str, resources: Any, num_nodes: int, context: Any = None, **settings: Any
    ) -> Cluster:
        """Launch ``name`` (or reuse the live cluster of that name) through the core."""
        from airflow_provider_sky.core.cluster import Cluster

        creds = self.get_credentials()
        return Cluster.launch(
            name,
            cloud,
            resources,
            num_nodes,
            ssh_private_key=self._require_key(cloud),
            ssh_user=creds.ssh_user,
            **{**self.cloud_settings(cloud, context), **settings},
        )

    def get_cloud(self, cloud: str, context: Any = None) -> Any:
        """The core's cloud object itself (for steps a task splits across deferrals, like AWS launches)."""
        from airflow_provider_sky.core.clouds import SshCredentials, get_cloud

        creds = self.get_credentials()
        key = self._require_key(cloud)
        if key is None:
            from airflow_provider_sky.core.keys import default_private_key

            key = default_private_key()
        return get_cloud(cloud, SshCredentials(key, creds.ssh_user), **self.cloud_settings(cloud, context))

    def from_handle(self, handle: dict[str, Any]) -> Cluster:
        """Rebuild a cluster from a launch task's handle."""
        from airflow_provider_sky.core.cluster import Cluster

        cloud = str(handle.get("cloud", "local"))
        extra = self.cloud_settings(cloud) if cloud == "aws" else {}
        return Cluster.from_handle(
            handle, ssh_private_key=self._require_key(cloud), ssh_user=self.get_credentials().ssh_user, **extra
        )

    def get_cluster(self, name: str, cloud: str | None = None) -> Cluster | None:
        """The live cluster called ``name`` on ``cloud`` (default: the connection's cloud), or None."""
        from airflow_provider_sky.core.cluster import Cluster

        creds = self.get_credentials()
        cloud = cloud or creds.cloud
        return Cluster.get(
            name,
            cloud,
            ssh_private_key=self._require_key(cloud),
            ssh_user=creds.ssh_user,
            **self.cloud_settings(cloud),
        )

    def resolve_cluster(self, value: Any) -> Cluster:
        """The cluster an operator argument names: a launch output / handle dict, or a live cluster's name.

        :raises ClusterNotFoundError: no live cluster has that name.
        """
        from airflow_provider_sky.core.errors import ClusterNotFoundError
        from airflow_provider_sky.utils.cluster_ref import parse_cluster_ref

        ref = parse_cluster_ref(value)
        if ref.handle is not None:
            return self.from_handle(ref.handle)
        found = self.get_cluster(ref.name)
        if found is None:
            raise ClusterNotFoundError(f"cluster: no live cluster named {ref.name!r}")
        return found

    def test_connection(self) -> tuple[bool, str]:
        """Check that the key parses (the UI's Test button); reaching nodes needs a cluster."""
        try:
            creds = self.get_credentials()
            if creds.private_key:
                from airflow_provider_sky.core.keys import public_key_line

                public_key_line(creds.private_key)
            return True, f"cloud {creds.cloud!r}: credentials are usable"
        except Exception as exc:
            return False, str(exc)


#: Bytes of log read per node per poll: bounds one poll's memory and one trigger event's size.
LOG_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class JobPoll:
    """One poll of a job: its status, new node-prefixed log bytes, the next offsets, and whether the
    read stopped at ``LOG_READ_BYTES`` (so more finished output is waiting)."""

    status: Any
    data: bytes
    offset: list[int]
    more: bool

    @property
    def done(self) -> bool:
        """Finished and every byte of its log read."""
        return bool(self.status.state.finished) and not self.more


def poll_job(cluster: Cluster, job_id: str, offset: list[int] | int, read_bytes: int = LOG_READ_BYTES) -> JobPoll:
    """Status plus new log output since ``offset``; blocking (triggers call it in a thread).

    The status is read first, so output read after seeing "finished" is complete. Reads return
    whole lines only; once the job has finished and no whole line is left, one flushing read
    returns the last unterminated line. A flushing read earlier would cut a line at the read
    limit. ``more`` tells callers that a finished job still has output to read, so they read on
    instead of dropping the tail of the log.
    """
    status = cluster.job_status(job_id)
    starts = [int(offset)] * len(cluster.nodes) if isinstance(offset, int) else [int(o) for o in offset]
    chunk = cluster.tail_logs(job_id, starts, max_bytes=read_bytes)
    if not status.state.finished:
        return JobPoll(status, chunk.data, list(chunk.offset), more=False)
    if chunk.offset != starts:
        return JobPoll(status, chunk.data, list(chunk.offset), more=True)
    last = cluster.tail_logs(job_id, starts, max_bytes=read_bytes, flush=True)
    # A flushing read consumes all it reads, so a node that advanced by read_bytes may have more.
    more = any(new - old >= read_bytes for old, new in zip(starts, last.offset, strict=True))
    return JobPoll(status, last.data, list(last.offset), more)
