"""The AWS cloud: clusters of EC2 instances, found and managed by their tags.

The instances' tags are the truth about a cluster: launch, status, stop, start,
teardown and :meth:`AwsCloud.list_clusters` all query EC2 by tag, so a lost
cluster handle (XCom) never leaks or duplicates a cluster. Credentials never pass
through this module: it is given a ready ``boto3.Session`` (or a zero-argument
factory returning one); the Airflow layer builds it from
``AwsBaseHook(aws_conn_id).get_session()``. boto3 is imported lazily, so naming
another cloud never imports it.

Launch walks the optimizer's cheapest-first plan: every zone of a candidate
(region), then the next candidate. Capacity and quota errors
(:data:`CAPACITY_ERRORS`) terminate what the attempt created and move on; every
other error stops at once. See ``docs/aws.md``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_sky.core.clouds.base import (
    Cloud,
    ClusterRecord,
    ClusterStatus,
    SshCredentials,
    check_cluster_name,
)
from airflow_provider_sky.core.errors import CapacityError, ClusterMismatchError, SkyConfigError, SkyError
from airflow_provider_sky.core.handle import ClusterHandle, NodeInfo
from airflow_provider_sky.core.resources import Resources

if TYPE_CHECKING:
    from airflow_provider_sky.core.optimizer import Candidate

log = logging.getLogger(__name__)

MANAGED_BY = "airflow-provider-sky"
TAG_MANAGED_BY = "managed-by"
TAG_CLUSTER = "sky-cluster-name"
TAG_NUM_NODES = "sky-num-nodes"
TAG_RANK = "sky-node-rank"
TAG_HOST_KEY = "sky-host-key"
TAG_PRICE = "sky-hourly-price"
TAG_RESOURCES = "sky-resources"
AIRFLOW_TAGS = {
    "dag_id": "airflow-dag-id",
    "run_id": "airflow-run-id",
    "task_id": "airflow-task-id",
    "try_number": "airflow-try-number",
}
REMOTE_ROOT = ".sky-airflow"
DEFAULT_DISK_GB = 256
DEFAULT_SSH_USER = "ubuntu"
DEFAULT_IMAGE_TAG = "skypilot:custom-cpu-ubuntu"
DEFAULT_GPU_IMAGE_TAG = "skypilot:custom-gpu-ubuntu"

#: Error codes after which the next zone or region may still succeed.
CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "Unsupported",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacityOnHost",
        "InsufficientFreeAddressesInSubnet",
    }
)
CREDENTIAL_ERRORS = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "RequestExpired",
        "OptInRequired",
        "AccessDenied",
        "MissingAuthenticationToken",
    }
)
LIVE_STATES = ("pending", "running", "stopping", "stopped")
# Tag values are limited to 256 characters by EC2.
_TAG_VALUE_MAX = 256


class LaunchFailedError(CapacityError):
    """Every candidate of the plan failed; :attr:`attempts` holds ``(where, reason)`` for each, in order."""

    def __init__(self, cluster_name: str, attempts: list[tuple[str, str]]) -> None:
        self.attempts = attempts
        lines = "; ".join(f"{where}: {reason}" for where, reason in attempts)
        super().__init__(
            f"aws: could not launch cluster {cluster_name!r}: all {len(attempts)} attempt(s) failed: {lines}"
        )


class AwsApiError(SkyError):
    """An EC2 call failed for a reason that another zone or region will not fix."""


class LaunchInterruptedError(CapacityError):
    """Instances of a :meth:`AwsCloud.begin_launch` ended while starting; :attr:`zone` is where."""

    def __init__(self, zone: str, message: str) -> None:
        super().__init__(message)
        self.zone = zone


@dataclass(frozen=True)
class LaunchTicket:
    """What :meth:`AwsCloud.begin_launch` started (plain JSON through ``to_dict``, e.g. for a trigger)."""

    cluster_name: str
    region: str
    zone: str | None
    instance_ids: tuple[str, ...]
    hourly_price: float
    resources: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster_name": self.cluster_name,
            "region": self.region,
            "zone": self.zone,
            "instance_ids": list(self.instance_ids),
            "hourly_price": self.hourly_price,
            "resources": dict(self.resources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LaunchTicket:
        return cls(
            str(data["cluster_name"]),
            str(data["region"]),
            data.get("zone"),
            tuple(data["instance_ids"]),
            float(data.get("hourly_price", 0.0)),
            dict(data.get("resources", {})),
        )


@dataclass
class _Attempt:
    region: str
    zone: str | None  # zone name, None when EC2 picks (no zones known)
    subnet_id: str | None

    @property
    def where(self) -> str:
        return self.zone or self.region


def error_code(exc: BaseException) -> str | None:
    """The EC2 error code of a botocore ``ClientError`` (``None`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def key_pair_name(public_key: str) -> str:
    """A key pair name derived from the public key, so every cluster with that key shares one pair."""
    blob = public_key.split()[1] if len(public_key.split()) > 1 else public_key
    return f"sky-airflow-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _tags(items: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in items or ()}


def parse_ports(ports: Iterable[str]) -> list[tuple[int, int]]:
    """``"8080"`` or ``"8000-8010"`` -> inclusive TCP port ranges."""
    ranges = []
    for item in ports:
        text = str(item).strip()
        low, _, high = text.partition("-")
        try:
            start, end = int(low), int(high or low)
        except ValueError:
            raise SkyConfigError(f"resources.ports: invalid port {item!r}; accepted: '8080' or '8000-8010'") from None
        if not 1 <= start <= end <= 65535:
            raise SkyConfigError(f"resources.ports: invalid port range {item!r}; accepted: 1-65535, low-high")
        ranges.append((start, end))
    return ranges


def catalog_image(tag: str, region: str) -> str | None:
    """The AMI the catalog snapshot lists for a ``skypilot:`` image tag in ``region``."""
    from airflow_provider_sky.core import catalog

    for row in catalog._read_csv("aws/images.csv"):
        if row.get("Tag") == tag and row.get("Region") == region:
            return row.get("ImageId") or None
    return None


class AwsCloud(Cloud):
    """EC2 instances as cluster nodes.

    :param credentials: the SSH key of the cluster (its public half becomes the EC2 key pair)
        and optionally the login user.
    :param session_factory: a zero-argument callable returning a ``boto3.Session`` (called once,
        on first use); the Airflow layer passes one built from ``AwsBaseHook``.
    :param boto3_session: a ready ``boto3.Session`` (instead of ``session_factory``).
    :param region: use only this region (plan and lookups).
    :param regions: regions the plan may use and lookups search; default: the plan's regions,
        and for lookups every region EC2 lists as enabled.
    :param cluster_region: where the cluster was launched (written into handles); searched first.
    :param ssh_cidr: the CIDR allowed to reach SSH and the task's ``ports``.
    :param use_internal_ips: connect to the nodes' private IPs (the worker is inside the VPC).
    :param subnet_ids: one subnet id, or a mapping from region or zone name to a subnet id (or a
        list of them); a region with subnets launches only into them (the subnets fix the zones).
    :param security_group_name: a shared security group to use; default one per cluster,
        ``sky-airflow-<cluster>``, deleted with the cluster.
    :param airflow_tags: ``dag_id``, ``run_id``, ``task_id`` and ``try_number`` of the launching task.
    :param ssh_user: the login user; default the image's usual one (``ubuntu`` on the catalog's images,
        ``ec2-user`` on Amazon Linux, RHEL and SUSE, ``admin`` on Debian, ...).
    :param endpoint_url: an EC2/S3-compatible endpoint (an emulator); default AWS.
    :param disk_size: root volume GiB when the task does not say (default 256).
    :param api_max_attempts: botocore's attempts per API call (1 turns retries off).
    :param launch_timeout: seconds to wait for instances to run, and for teardown to finish.
    """

    name = "aws"
    supports_stop = True

    def __init__(
        self,
        credentials: SshCredentials,
        *,
        session_factory: Callable[[], Any] | None = None,
        boto3_session: Any = None,
        region: str | None = None,
        regions: Iterable[str] | None = None,
        cluster_region: str | None = None,
        ssh_cidr: str = "0.0.0.0/0",
        use_internal_ips: bool = False,
        subnet_ids: str | Mapping[str, str | list[str]] | None = None,
        security_group_name: str | None = None,
        airflow_tags: Mapping[str, Any] | None = None,
        ssh_user: str | None = None,
        endpoint_url: str | None = None,
        disk_size: int | None = None,
        api_max_attempts: int = 4,
        launch_timeout: float = 600.0,
        poll_interval: float = 2.0,
        **settings: Any,
    ) -> None:
        super().__init__(credentials, **settings)
        if settings:
            raise SkyConfigError(
                f"aws: unknown setting(s) {', '.join(sorted(settings))}; accepted: region, regions, ssh_cidr, "
                "use_internal_ips, subnet_ids, security_group_name, airflow_tags, ssh_user, endpoint_url, "
                "disk_size, api_max_attempts, launch_timeout, session_factory, boto3_session"
            )
        if boto3_session is not None and session_factory is not None:
            raise SkyConfigError("aws: give boto3_session or session_factory, not both")
        self._session = boto3_session
        self._session_factory = session_factory
        self.region = region
        self.regions = [region] if region else (list(regions) if regions else None)
        self.cluster_region = cluster_region
        self.ssh_cidr = _check_cidr(ssh_cidr)
        self.use_internal_ips = bool(use_internal_ips)
        self.subnet_ids = _check_subnets(subnet_ids)
        self.security_group_name = security_group_name
        self.airflow_tags = {str(k): str(v) for k, v in (airflow_tags or {}).items() if v is not None}
        unknown = set(self.airflow_tags) - set(AIRFLOW_TAGS)
        if unknown:
            raise SkyConfigError(
                f"aws.airflow_tags: unknown key(s) {', '.join(sorted(unknown))}; accepted: {', '.join(AIRFLOW_TAGS)}"
            )
        self._explicit_user = credentials.user or ssh_user
        self.ssh_user = self._explicit_user or DEFAULT_SSH_USER
        self._image_users: dict[tuple[str, str], str] = {}
        self.endpoint_url = endpoint_url
        self.disk_size = disk_size
        if not isinstance(api_max_attempts, int) or api_max_attempts < 1:
            raise SkyConfigError(f"aws.api_max_attempts: invalid value {api_max_attempts!r}; accepted: an integer >= 1")
        self.api_max_attempts = api_max_attempts
        self.launch_timeout = float(launch_timeout)
        self.poll_interval = float(poll_interval)
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._all_regions: list[str] | None = None
        self._public_key: str | None = None

    # -- plumbing -------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        """The boto3 session given by the caller; this module never looks for credentials itself."""
        with self._lock:
            if self._session is None:
                if self._session_factory is None:
                    raise SkyConfigError(
                        "aws: no AWS session; pass boto3_session= or session_factory= (the Airflow layer builds "
                        "one from the AWS connection named by aws_conn_id)"
                    )
                self._session = self._session_factory()
            return self._session

    def ec2(self, region: str) -> Any:
        """A (cached, thread-safe) EC2 client for ``region``."""
        # Creating clients from one boto3 session is not thread-safe (lookups run in threads): one at a time.
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                from botocore.config import Config

                config = Config(retries={"total_max_attempts": self.api_max_attempts, "mode": "standard"})
                client = self.session.client("ec2", region_name=region, endpoint_url=self.endpoint_url, config=config)
                self._clients[region] = client
            return client

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One EC2 call; credential errors become one clear message instead of a botocore traceback."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code in CREDENTIAL_ERRORS:
                raise AwsApiError(
                    f"aws: {what} was refused ({_error_message(exc)}); check the AWS connection's credentials "
                    "and the permissions of its role"
                ) from None
            raise
        except BotoCoreError as exc:
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise AwsApiError(f"aws: {what}: the AWS session has no usable credentials ({exc})") from None
            raise AwsApiError(f"aws: {what} failed: {exc}") from None

    @property
    def public_key(self) -> str:
        if self._public_key is None:
            from airflow_provider_sky.core.keys import public_key_line

            self._public_key = public_key_line(self.credentials.private_key)
        return self._public_key

    def _lookup_regions(self) -> list[str]:
        """Regions to search by tag: the configured ones, else every region EC2 lists as enabled."""
        if self.regions:
            found = list(self.regions)
        else:
            if self._all_regions is None:
                home = self.cluster_region or getattr(self.session, "region_name", None) or "us-east-1"
                reply = self._call("DescribeRegions", self.ec2(home).describe_regions)
                self._all_regions = sorted(r["RegionName"] for r in reply["Regions"])
            found = list(self._all_regions)
        if self.cluster_region and self.cluster_region in found:
            found.remove(self.cluster_region)
            found.insert(0, self.cluster_region)
        return found

    def _instances(self, name: str | None, regions: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Live (not terminated) instances of a cluster (of every cluster when ``name`` is None), per region."""
        filters = [
            {"Name": f"tag:{TAG_MANAGED_BY}", "Values": [MANAGED_BY]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        if name is not None:
            filters.append({"Name": f"tag:{TAG_CLUSTER}", "Values": [name]})

        def one(region: str) -> list[dict[str, Any]]:
            paginator = self.ec2(region).get_paginator("describe_instances")
            pages = self._call("DescribeInstances", lambda: list(paginator.paginate(Filters=filters)))
            return [inst for page in pages for res in page["Reservations"] for inst in res["Instances"]]

        chosen = regions or self._lookup_regions()
        if len(chosen) == 1:
            results = [one(chosen[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
                results = list(pool.map(one, chosen))
        return {region: found for region, found in zip(chosen, results, strict=True) if found}

    def _cluster_instances(self, name: str) -> tuple[str | None, list[dict[str, Any]]]:
        """(region, instances) of a cluster; it must live in one region."""
        per_region = self._instances(name)
        if len(per_region) > 1:
            raise SkyError(
                f"aws: cluster {name!r} has instances in several regions ({', '.join(sorted(per_region))}); "
                "tear it down and launch again"
            )
        for region, found in per_region.items():
            return region, found
        return None, []

    # -- Cloud interface -------------------------------------------------------------------

    def check_resources(self, resources: Resources, num_nodes: int) -> None:
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
            raise SkyConfigError(f"num_nodes: invalid value {num_nodes!r}; accepted: a positive integer")
        for candidate in resources.candidates()[0]:
            if candidate.cloud not in (None, "aws"):
                raise SkyConfigError(
                    f"resources.cloud: the request pins cloud {candidate.cloud!r} but cloud='aws' was chosen"
                )
            parse_ports(candidate.ports)
            if candidate.disk_size is not None and candidate.disk_size < 8:
                raise SkyConfigError(f"resources.disk_size: {candidate.disk_size} GiB is too small; accepted: >= 8")
        self._plan(resources, num_nodes)

    def _plan(self, resources: Resources, num_nodes: int) -> list[Candidate]:
        from airflow_provider_sky.core.optimizer import plan

        candidates = plan(resources, clouds=["aws"], num_nodes=num_nodes)
        if self.regions:
            allowed = [c for c in candidates if c.region in self.regions]
            if not allowed:
                raise SkyConfigError(
                    f"aws: no candidate of the plan is in the allowed region(s) {', '.join(self.regions)}; "
                    f"the plan offers {', '.join(sorted({c.region for c in candidates})[:10])}"
                )
            candidates = allowed
        return candidates

    def launch(self, name: str, resources: Resources, num_nodes: int) -> ClusterHandle:
        result = self._launch(name, resources, num_nodes, wait=True, skip_zones=())
        assert isinstance(result, ClusterHandle)
        return result

    def begin_launch(
        self, name: str, resources: Resources, num_nodes: int, *, skip_zones: Iterable[str] = ()
    ) -> LaunchTicket:
        """Launch without waiting for the instances to run (for a deferrable task): create, or adopt, and return.

        Follow with :meth:`poll_launch` until it returns the handle. When it raises
        :class:`LaunchInterruptedError` (instances ended while starting, e.g. spot capacity reclaimed),
        call this again with that zone added to ``skip_zones`` to go on along the plan.

        :param skip_zones: zone names (``us-east-1a``) not to try again.
        """
        result = self._launch(name, resources, num_nodes, wait=False, skip_zones=tuple(skip_zones))
        assert isinstance(result, LaunchTicket)
        return result

    def poll_launch(self, ticket: LaunchTicket | Mapping[str, Any]) -> ClusterHandle | None:
        """The cluster's handle once every instance of a :meth:`begin_launch` runs, else None (ask again)."""
        ticket = ticket if isinstance(ticket, LaunchTicket) else LaunchTicket.from_dict(ticket)
        found = self._describe(ticket.region, list(ticket.instance_ids))
        states = {inst["InstanceId"]: inst["State"]["Name"] for inst in found}
        gone = [i for i in ticket.instance_ids if states.get(i, "terminated") in ("shutting-down", "terminated")]
        if gone:
            self._terminate_attempt(ticket.cluster_name, ticket.region, list(ticket.instance_ids))
            raise LaunchInterruptedError(
                ticket.zone or ticket.region,
                f"aws: instance(s) {', '.join(gone)} of cluster {ticket.cluster_name!r} ended while starting in "
                f"{ticket.zone or ticket.region}; the others were terminated: launch again skipping that zone",
            )
        running = [inst for inst in found if inst["State"]["Name"] == "running" and self._address(inst)]
        if len(running) < len(ticket.instance_ids):
            return None
        handle = self._handle(ticket.cluster_name, ticket.region, running, None, price=ticket.hourly_price)
        handle.resources = dict(ticket.resources)
        return handle

    def _launch(
        self, name: str, resources: Resources, num_nodes: int, *, wait: bool, skip_zones: tuple[str, ...]
    ) -> ClusterHandle | LaunchTicket:
        check_cluster_name(name)
        self.check_resources(resources, num_nodes)
        region, existing = self._cluster_instances(name)
        if existing and region is not None:
            reused = self._reuse(name, region, existing, resources, num_nodes, wait)
            if reused is not None:
                return reused
        attempts: list[tuple[str, str]] = [(zone, "skipped (failed before)") for zone in skip_zones]
        for candidate in self._plan(resources, num_nodes):
            result = self._try_candidate(name, candidate, resources, num_nodes, attempts, wait, skip_zones)
            if result is not None:
                return result
        raise LaunchFailedError(name, attempts)

    def _reuse(
        self,
        name: str,
        region: str,
        instances: list[dict[str, Any]],
        resources: Resources,
        num_nodes: int,
        wait: bool = True,
    ) -> ClusterHandle | LaunchTicket | None:
        """Adopt the instances of an earlier launch of ``name``; None when they were cleaned up instead."""
        tags = _tags(instances[0].get("Tags"))
        wanted = int(tags.get(TAG_NUM_NODES, len(instances)))
        if wanted != num_nodes:
            raise ClusterMismatchError(
                f"cluster {name!r} already exists in {region} with {wanted} node(s) but {num_nodes} were requested; "
                "tear it down first or use another cluster_name"
            )
        key_name = key_pair_name(self.public_key)
        if any(inst.get("KeyName") not in (None, key_name) for inst in instances):
            raise ClusterMismatchError(
                f"cluster {name!r} in {region} was launched with another SSH key; tear it down first or use the "
                "same key"
            )
        types = {inst["InstanceType"] for inst in instances}
        fitting = self._plan(resources, num_nodes)
        offered = {c.instance_type for c in fitting if c.region == region}
        if not types <= offered:
            wanted_types = ", ".join(sorted({c.instance_type for c in fitting})[:5])
            raise ClusterMismatchError(
                f"cluster {name!r} in {region} runs {', '.join(sorted(types))}, which does not fit the request "
                f"(it asks for {wanted_types or 'other instances'}); tear it down first or use another cluster_name"
            )
        spot = {inst.get("InstanceLifecycle") == "spot" for inst in instances}
        if spot != {fitting[0].use_spot}:
            raise ClusterMismatchError(
                f"cluster {name!r} in {region} runs {'spot' if True in spot else 'on-demand'} instances but "
                f"{'spot' if fitting[0].use_spot else 'on-demand'} was requested; tear it down first or use another "
                "cluster_name"
            )
        if len(instances) != num_nodes:
            # An earlier launch was killed between creating and finishing: its instances are an
            # incomplete cluster, so they go and the plan is walked again.
            log.warning(
                "Cluster %r has %d of %d instance(s) in %s from an interrupted launch; terminating them",
                name, len(instances), num_nodes, region,
            )
            self._terminate_and_wait(region, [inst["InstanceId"] for inst in instances])
            return None
        log.info("Reusing cluster %r: %d instance(s) in %s", name, len(instances), region)
        self._start_instances(region, instances)
        price = float(tags.get(TAG_PRICE, 0.0) or 0.0)
        if not wait:
            zones = {inst.get("Placement", {}).get("AvailabilityZone") for inst in instances}
            return LaunchTicket(name, region, zones.pop() if len(zones) == 1 else None,
                                tuple(inst["InstanceId"] for inst in instances), price, resources.to_dict())
        ready = self._wait_running(region, [inst["InstanceId"] for inst in instances])
        return self._handle(name, region, ready, resources, price=price)

    def _try_candidate(
        self,
        name: str,
        candidate: Candidate,
        resources: Resources,
        num_nodes: int,
        attempts: list[tuple[str, str]],
        wait: bool = True,
        skip_zones: tuple[str, ...] = (),
    ) -> ClusterHandle | LaunchTicket | None:
        region = candidate.region
        label = f"{candidate.instance_type}{' (spot)' if candidate.use_spot else ''}"
        places, why_none = self._attempts(candidate)
        places = [place for place in places if place.zone not in skip_zones]
        if not places:
            attempts.append((region, f"{label}: {why_none}"))
            return None
        image_id = self._image(candidate, resources)
        root_device = self._check_image(region, image_id)
        key_name = self._ensure_key_pair(region)
        groups: dict[str | None, str] = {}
        for place in places:
            vpc_id = self._vpc_of(region, place.subnet_id)
            if vpc_id not in groups:
                groups[vpc_id] = self._ensure_security_group(name, region, vpc_id, resources)
            created: list[str] = []
            try:
                created = self._run_instances(
                    name, place, candidate, resources, num_nodes, image_id, root_device, key_name, groups[vpc_id]
                )
                ready = self._wait_running(region, created) if wait else []
            except _CapacityFailure as failure:
                attempts.append((f"{place.where}", f"{label}: {failure.reason}"))
                log.warning("aws: %s in %s: %s; trying the next zone or region", label, place.where, failure.reason)
                self._terminate_attempt(name, region, created)
                continue
            except BaseException:
                # Not a capacity problem: stop here, but leave nothing of this attempt behind.
                self._terminate_attempt(name, region, created)
                raise
            price = candidate.cluster_price
            self._tag(region, created, {TAG_PRICE: f"{price:g}"})
            if not wait:
                return LaunchTicket(name, region, place.zone, tuple(created), price, resources.to_dict())
            return self._handle(name, region, ready, resources, price=price)
        return None

    def _attempts(self, candidate: Candidate) -> tuple[list[_Attempt], str]:
        """Where to try a candidate: its subnets (in plan zone order), else its zones by name; and why none."""
        from botocore.exceptions import ClientError

        region = candidate.region
        reply = self._call("DescribeAvailabilityZones", self.ec2(region).describe_availability_zones)
        by_id = {z["ZoneId"]: z["ZoneName"] for z in reply["AvailabilityZones"] if z.get("ZoneId")}
        names = {z["ZoneName"] for z in reply["AvailabilityZones"]}
        order = []
        for zone in candidate.zones:
            name = by_id.get(zone) or (zone if zone in names else None)
            if name and name not in order:
                order.append(name)
        subnets = self._subnets_for(region, names)
        if subnets:
            try:
                described = self._call(
                    "DescribeSubnets", self.ec2(region).describe_subnets, SubnetIds=[s for s, _ in subnets]
                )["Subnets"]
            except ClientError as exc:
                # One subnet id given for every region only exists in its own region.
                if isinstance(self.subnet_ids, str) and error_code(exc) == "InvalidSubnetID.NotFound":
                    return [], f"subnet {self.subnet_ids} is not in this region"
                raise AwsApiError(f"aws: DescribeSubnets in {region}: {_error_message(exc)}") from None
            zone_of = {s["SubnetId"]: s["AvailabilityZone"] for s in described}
            rank = {zone: i for i, zone in enumerate(order)}
            chosen = [s for s, _ in subnets if not order or zone_of[s] in rank]
            chosen.sort(key=lambda s: rank.get(zone_of[s], len(rank)))
            why = f"no configured subnet is in one of the plan's zones ({', '.join(order)})"
            return [_Attempt(region, zone_of[s], s) for s in chosen], why
        if not candidate.zones:
            return [_Attempt(region, None, None)], ""
        why = f"none of the plan's zones {', '.join(candidate.zones)} exists in this account"
        return [_Attempt(region, zone, None) for zone in order], why

    def _subnets_for(self, region: str, zone_names: set[str]) -> list[tuple[str, str]]:
        """(subnet id, key it was configured under) for ``region``: by region key, or by its zones' names."""
        if self.subnet_ids is None:
            return []
        if isinstance(self.subnet_ids, str):
            return [(self.subnet_ids, "*")]
        found: list[tuple[str, str]] = []
        for key, value in self.subnet_ids.items():
            if key == region or key in zone_names:
                found.extend((subnet, key) for subnet in ([value] if isinstance(value, str) else value))
        return found

    def _image(self, candidate: Candidate, resources: Resources) -> str:
        image = candidate.image_id
        if image is None:
            gpu = candidate.accelerator is not None
            tag = DEFAULT_GPU_IMAGE_TAG if gpu else DEFAULT_IMAGE_TAG
            if candidate.arch == "arm64":
                tag += "-arm64"
            image = tag
        if image.startswith("skypilot:"):
            found = catalog_image(image, candidate.region)
            if found is None:
                raise SkyConfigError(
                    f"resources.image_id: the catalog has no image {image!r} in {candidate.region}; "
                    "give an AMI id (ami-...) or a per-region dict"
                )
            return found
        del resources
        return image

    def _check_image(self, region: str, image_id: str) -> str | None:
        """The image's root device name; a missing image stops the launch at once (another zone will not help)."""
        from botocore.exceptions import ClientError

        try:
            reply = self._call("DescribeImages", self.ec2(region).describe_images, ImageIds=[image_id])
        except ClientError as exc:
            code = error_code(exc) or ""
            if code.startswith("InvalidAMIID"):
                raise SkyConfigError(
                    f"resources.image_id: image {image_id!r} does not exist in {region} ({_error_message(exc)}); "
                    "give an AMI id of that region, or a per-region dict {region: ami-...}"
                ) from None
            raise AwsApiError(f"aws: DescribeImages {image_id} in {region}: {_error_message(exc)}") from None
        images = reply.get("Images", [])
        if not images:
            raise SkyConfigError(f"resources.image_id: image {image_id!r} does not exist in {region}")
        self._image_users[(region, image_id)] = default_user(images[0])
        return images[0].get("RootDeviceName")

    def _user_for(self, region: str, image_id: str) -> str:
        """The login user: the one given, else the image's usual one (``ubuntu``, ``ec2-user``, ...)."""
        if self._explicit_user:
            return self._explicit_user
        if (region, image_id) not in self._image_users:
            try:
                reply = self._call("DescribeImages", self.ec2(region).describe_images, ImageIds=[image_id])
                images = reply.get("Images", [])
            except Exception as exc:  # a deregistered image keeps its instances running
                log.debug("aws: cannot describe image %s: %s", image_id, exc)
                images = []
            self._image_users[(region, image_id)] = default_user(images[0]) if images else DEFAULT_SSH_USER
        return self._image_users[(region, image_id)]

    def _ensure_key_pair(self, region: str) -> str:
        from botocore.exceptions import ClientError

        name = key_pair_name(self.public_key)
        ec2 = self.ec2(region)
        try:
            self._call("DescribeKeyPairs", ec2.describe_key_pairs, KeyNames=[name])
            return name
        except ClientError as exc:
            if error_code(exc) != "InvalidKeyPair.NotFound":
                raise AwsApiError(f"aws: DescribeKeyPairs in {region}: {_error_message(exc)}") from None
        try:
            self._call(
                "ImportKeyPair",
                ec2.import_key_pair,
                KeyName=name,
                PublicKeyMaterial=self.public_key.encode(),
                TagSpecifications=[
                    {"ResourceType": "key-pair", "Tags": [{"Key": TAG_MANAGED_BY, "Value": MANAGED_BY}]}
                ],
            )
            log.info("aws: imported key pair %s in %s", name, region)
        except ClientError as exc:
            if error_code(exc) != "InvalidKeyPair.Duplicate":  # another launch imported it meanwhile
                raise AwsApiError(f"aws: ImportKeyPair in {region}: {_error_message(exc)}") from None
        return name

    def _vpc_of(self, region: str, subnet_id: str | None) -> str | None:
        ec2 = self.ec2(region)
        if subnet_id is not None:
            subnets = self._call("DescribeSubnets", ec2.describe_subnets, SubnetIds=[subnet_id])["Subnets"]
            return str(subnets[0]["VpcId"])
        vpcs = self._call(
            "DescribeVpcs", ec2.describe_vpcs, Filters=[{"Name": "isDefault", "Values": ["true"]}]
        )["Vpcs"]
        if not vpcs:
            raise SkyConfigError(
                f"aws.subnet_ids: region {region} has no default VPC; give subnet_ids={{'{region}': 'subnet-...'}}"
            )
        return str(vpcs[0]["VpcId"])

    def _group_name(self, name: str) -> str:
        return self.security_group_name or f"sky-airflow-{name}"

    def _ensure_security_group(self, name: str, region: str, vpc_id: str | None, resources: Resources) -> str:
        """The security group allowing SSH and the task's ports from ``ssh_cidr``, created when missing."""
        from botocore.exceptions import ClientError

        ec2 = self.ec2(region)
        group_name = self._group_name(name)
        filters = [{"Name": "group-name", "Values": [group_name]}]
        if vpc_id:
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
        found = self._call("DescribeSecurityGroups", ec2.describe_security_groups, Filters=filters)["SecurityGroups"]
        if found:
            group_id = str(found[0]["GroupId"])
        else:
            tags = [{"Key": TAG_MANAGED_BY, "Value": MANAGED_BY}]
            if self.security_group_name is None:
                tags.append({"Key": TAG_CLUSTER, "Value": name})
            kwargs: dict[str, Any] = {
                "GroupName": group_name,
                "Description": f"SSH and task ports of airflow-provider-sky cluster {name}"
                if self.security_group_name is None
                else "SSH and task ports of airflow-provider-sky clusters",
                "TagSpecifications": [{"ResourceType": "security-group", "Tags": tags}],
            }
            if vpc_id:
                kwargs["VpcId"] = vpc_id
            try:
                group_id = str(self._call("CreateSecurityGroup", ec2.create_security_group, **kwargs)["GroupId"])
            except ClientError as exc:
                if error_code(exc) != "InvalidGroup.Duplicate":
                    raise AwsApiError(f"aws: CreateSecurityGroup in {region}: {_error_message(exc)}") from None
                again = self._call("DescribeSecurityGroups", ec2.describe_security_groups, Filters=filters)
                group_id = str(again["SecurityGroups"][0]["GroupId"])
        ports = [(22, 22), *parse_ports(resources.ports)]
        for low, high in ports:
            try:
                self._call(
                    "AuthorizeSecurityGroupIngress",
                    ec2.authorize_security_group_ingress,
                    GroupId=group_id,
                    IpPermissions=[
                        {
                            "IpProtocol": "tcp",
                            "FromPort": low,
                            "ToPort": high,
                            "IpRanges": [{"CidrIp": self.ssh_cidr, "Description": "airflow-provider-sky"}],
                        }
                    ],
                )
            except ClientError as exc:
                if error_code(exc) != "InvalidPermission.Duplicate":
                    raise AwsApiError(
                        f"aws: AuthorizeSecurityGroupIngress in {region}: {_error_message(exc)}"
                    ) from None
        return group_id

    def _base_tags(self, name: str, num_nodes: int) -> list[dict[str, str]]:
        tags = {
            "Name": f"sky-{name}",
            TAG_MANAGED_BY: MANAGED_BY,
            TAG_CLUSTER: name,
            TAG_NUM_NODES: str(num_nodes),
        }
        for key, tag in AIRFLOW_TAGS.items():
            if key in self.airflow_tags:
                tags[tag] = self.airflow_tags[key][:_TAG_VALUE_MAX]
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def _run_instances(
        self,
        name: str,
        place: _Attempt,
        candidate: Candidate,
        resources: Resources,
        num_nodes: int,
        image_id: str,
        root_device: str | None,
        key_name: str,
        group_id: str,
    ) -> list[str]:
        from botocore.exceptions import ClientError

        tags = self._base_tags(name, num_nodes)
        kwargs: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": candidate.instance_type,
            "MinCount": num_nodes,
            "MaxCount": num_nodes,
            "KeyName": key_name,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        disk = resources.disk_size or self.disk_size or DEFAULT_DISK_GB
        if root_device:
            kwargs["BlockDeviceMappings"] = [
                {
                    "DeviceName": root_device,
                    "Ebs": {"VolumeSize": disk, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ]
        if candidate.use_spot:
            kwargs["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        if place.subnet_id and not self.use_internal_ips:
            kwargs["NetworkInterfaces"] = [
                {"DeviceIndex": 0, "SubnetId": place.subnet_id, "Groups": [group_id], "AssociatePublicIpAddress": True}
            ]
        else:
            kwargs["SecurityGroupIds"] = [group_id]
            if place.subnet_id:
                kwargs["SubnetId"] = place.subnet_id
            elif place.zone:
                kwargs["Placement"] = {"AvailabilityZone": place.zone}
        log.info(
            "aws: launching %d x %s for cluster %r in %s", num_nodes, candidate.instance_type, name, place.where
        )
        try:
            reply = self._call("RunInstances", self.ec2(place.region).run_instances, **kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code in CAPACITY_ERRORS:
                raise _CapacityFailure(_error_message(exc)) from None
            if code and (code.startswith("InvalidAMIID") or code.startswith("InvalidInstanceType")):
                raise SkyConfigError(
                    f"aws: RunInstances in {place.where} rejected the request: {_error_message(exc)}"
                ) from None
            raise AwsApiError(f"aws: RunInstances in {place.where}: {_error_message(exc)}") from None
        instances = sorted(reply["Instances"], key=lambda inst: (inst.get("AmiLaunchIndex", 0), inst["InstanceId"]))
        ids = [inst["InstanceId"] for inst in instances]
        for rank, instance_id in enumerate(ids):
            self._tag(place.region, [instance_id], {TAG_RANK: str(rank)})
        return ids

    def _tag(self, region: str, ids: list[str], tags: Mapping[str, str]) -> None:
        if ids:
            self._call(
                "CreateTags",
                self.ec2(region).create_tags,
                Resources=ids,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )

    def _describe(self, region: str, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        reply = self._call("DescribeInstances", self.ec2(region).describe_instances, InstanceIds=ids)
        return [inst for res in reply["Reservations"] for inst in res["Instances"]]

    def _wait_running(self, region: str, ids: list[str]) -> list[dict[str, Any]]:
        """Poll until every instance runs (and has the IP we connect to); a vanished one is a capacity failure."""
        deadline = time.monotonic() + self.launch_timeout
        while True:
            found = self._describe(region, ids)
            states = {inst["InstanceId"]: inst["State"]["Name"] for inst in found}
            gone = [i for i in ids if states.get(i) in ("shutting-down", "terminated")]
            if gone:
                reasons = {
                    inst.get("StateReason", {}).get("Message", "terminated")
                    for inst in found
                    if inst["InstanceId"] in gone
                }
                raise _CapacityFailure(f"instance(s) {', '.join(gone)} ended while starting: {'; '.join(reasons)}")
            running = [inst for inst in found if inst["State"]["Name"] == "running"]
            if len(running) == len(ids) and all(self._address(inst) for inst in running):
                return running
            if time.monotonic() > deadline:
                raise AwsApiError(
                    f"aws: instance(s) {', '.join(ids)} in {region} not running with an IP after "
                    f"{self.launch_timeout:g}s (states: {states})"
                )
            time.sleep(self.poll_interval)

    def _address(self, inst: Mapping[str, Any]) -> str | None:
        if self.use_internal_ips:
            return inst.get("PrivateIpAddress")
        return inst.get("PublicIpAddress")

    def _terminate_attempt(self, name: str, region: str, created: list[str]) -> None:
        """Terminate what one attempt created: its instances, and any instance of the cluster it tagged."""
        try:
            leftovers = {inst["InstanceId"] for inst in self._instances(name, [region]).get(region, [])}
        except Exception:  # cleanup must not hide the original error
            leftovers = set()
        ids = sorted(set(created) | leftovers)
        if ids:
            try:
                self._call("TerminateInstances", self.ec2(region).terminate_instances, InstanceIds=ids)
            except Exception as exc:
                log.error("aws: could not terminate %s in %s after a failed attempt: %s", ids, region, exc)

    def _terminate_and_wait(self, region: str, ids: list[str]) -> None:
        if not ids:
            return
        self._call("TerminateInstances", self.ec2(region).terminate_instances, InstanceIds=ids)
        deadline = time.monotonic() + self.launch_timeout
        while True:
            states = {inst["State"]["Name"] for inst in self._describe(region, ids)}
            if states <= {"terminated"}:
                return
            if time.monotonic() > deadline:
                raise AwsApiError(f"aws: instance(s) {', '.join(ids)} in {region} not terminated after "
                                  f"{self.launch_timeout:g}s (states: {sorted(states)})")
            time.sleep(self.poll_interval)

    def _start_instances(self, region: str, instances: list[dict[str, Any]]) -> None:
        """Start stopped instances (waiting out ``stopping`` first: EC2 refuses to start those)."""
        ids = [inst["InstanceId"] for inst in instances if inst["State"]["Name"] in ("stopping", "stopped")]
        if not ids:
            return
        deadline = time.monotonic() + self.launch_timeout
        while any(inst["State"]["Name"] == "stopping" for inst in self._describe(region, ids)):
            if time.monotonic() > deadline:
                raise AwsApiError(f"aws: instance(s) {', '.join(ids)} still stopping after {self.launch_timeout:g}s")
            time.sleep(self.poll_interval)
        log.info("aws: starting %d stopped instance(s) in %s", len(ids), region)
        self._call("StartInstances", self.ec2(region).start_instances, InstanceIds=ids)

    def _handle(
        self, name: str, region: str, instances: list[dict[str, Any]], resources: Resources | None, price: float
    ) -> ClusterHandle:
        def rank_of(inst: Mapping[str, Any]) -> tuple[int, int, str]:
            tags = _tags(inst.get("Tags"))
            rank = tags.get(TAG_RANK)
            known = int(rank) if rank and rank.isdigit() else 1 << 30
            return (known, inst.get("AmiLaunchIndex", 0), inst["InstanceId"])

        ordered = sorted(instances, key=rank_of)
        # Instances of an interrupted launch may lack rank tags: give them now, so the order is stable.
        for rank, inst in enumerate(ordered):
            if _tags(inst.get("Tags")).get(TAG_RANK) != str(rank):
                self._tag(region, [inst["InstanceId"]], {TAG_RANK: str(rank)})
        self.ssh_user = self._user_for(region, ordered[0]["ImageId"])
        nodes = []
        for rank, inst in enumerate(ordered):
            tags = _tags(inst.get("Tags"))
            ip = self._address(inst)
            if not ip:
                kind = "private" if self.use_internal_ips else "public"
                raise AwsApiError(f"aws: instance {inst['InstanceId']} has no {kind} IP")
            nodes.append(
                NodeInfo(
                    rank=rank,
                    node_id=inst["InstanceId"],
                    ip=ip,
                    ssh_port=22,
                    ssh_user=self.ssh_user,
                    host_key=tags.get(TAG_HOST_KEY) or None,
                    internal_ip=inst.get("PrivateIpAddress"),
                )
            )
        self.cluster_region = region  # later calls on this cloud (pinning host keys, teardown) look there first
        launched = min(inst.get("LaunchTime") or datetime.now(UTC) for inst in ordered)
        zones = sorted({inst.get("Placement", {}).get("AvailabilityZone", "") for inst in ordered} - {""})
        return ClusterHandle(
            cluster_name=name,
            cloud=self.name,
            nodes=nodes,
            region=region,
            zone=zones[0] if len(zones) == 1 else None,
            launched_at=launched.isoformat(timespec="seconds") if isinstance(launched, datetime) else str(launched),
            resources=resources.to_dict() if resources is not None else {"instance_type": ordered[0]["InstanceType"]},
            hourly_price=price,
            remote_root=REMOTE_ROOT,
            cloud_settings=self._handle_settings(region),
        )

    def _handle_settings(self, region: str) -> dict[str, Any]:
        """Non-secret settings another process needs to manage the cluster (the session is passed again)."""
        settings: dict[str, Any] = {
            "cluster_region": region,
            "ssh_cidr": self.ssh_cidr,
            "use_internal_ips": self.use_internal_ips,
            "ssh_user": self.ssh_user,
        }
        if self.endpoint_url:
            settings["endpoint_url"] = self.endpoint_url
        if self.regions:
            settings["regions"] = list(self.regions)
        if self.subnet_ids is not None:
            settings["subnet_ids"] = self.subnet_ids if isinstance(self.subnet_ids, str) else dict(self.subnet_ids)
        if self.security_group_name:
            settings["security_group_name"] = self.security_group_name
        if self.api_max_attempts != 4:
            settings["api_max_attempts"] = self.api_max_attempts
        return settings

    def record_host_key(self, cluster_name: str, node: NodeInfo) -> None:
        """Keep a key pinned at first contact on the instance itself, so a rebuilt handle checks it too."""
        key = " ".join((node.host_key or "").split()[:2])
        if not key or len(key) > _TAG_VALUE_MAX:
            return  # RSA host keys do not fit in a tag; they stay pinned in the handle only
        # Called while the SSH connection is being made: a failing tag write must not fail the connection,
        # the key stays pinned in the handle either way.
        try:
            region = self.cluster_region
            if region is None:
                region, _ = self._cluster_instances(cluster_name)
            if region is not None:
                self._tag(region, [node.node_id], {TAG_HOST_KEY: key})
        except Exception as exc:
            log.warning("aws: could not keep the host key of %s in its tags: %s", node.node_id, exc)

    def status(self, name: str) -> ClusterStatus | None:
        _, instances = self._cluster_instances(check_cluster_name(name))
        if not instances:
            return None
        states = {inst["State"]["Name"] for inst in instances}
        wanted = int(_tags(instances[0].get("Tags")).get(TAG_NUM_NODES, len(instances)))
        if states == {"running"} and len(instances) == wanted:
            return ClusterStatus.UP
        if states == {"stopped"} and len(instances) == wanted:
            return ClusterStatus.STOPPED
        return ClusterStatus.INIT

    def get_handle(self, name: str) -> ClusterHandle | None:
        region, instances = self._cluster_instances(check_cluster_name(name))
        if region is None or not instances or any(inst["State"]["Name"] != "running" for inst in instances):
            return None
        tags = _tags(instances[0].get("Tags"))
        return self._handle(name, region, instances, None, price=float(tags.get(TAG_PRICE, 0.0) or 0.0))

    def stop(self, name: str) -> None:
        region, instances = self._cluster_instances(check_cluster_name(name))
        if region is None:
            return
        spot = [inst["InstanceId"] for inst in instances if inst.get("InstanceLifecycle") == "spot"]
        if spot:
            raise SkyConfigError(
                f"cluster {name!r}: spot instance(s) {', '.join(spot)} cannot be stopped; use teardown (action='down')"
            )
        ids = [inst["InstanceId"] for inst in instances]
        self._call("StopInstances", self.ec2(region).stop_instances, InstanceIds=ids)
        deadline = time.monotonic() + self.launch_timeout
        while True:
            states = {inst["State"]["Name"] for inst in self._describe(region, ids)}
            if states == {"stopped"}:
                log.info("aws: stopped cluster %r (%d instance(s))", name, len(ids))
                return
            if time.monotonic() > deadline:
                raise AwsApiError(f"aws: cluster {name!r} not stopped after {self.launch_timeout:g}s: {sorted(states)}")
            time.sleep(self.poll_interval)

    def start(self, name: str) -> ClusterHandle:
        from airflow_provider_sky.core.errors import ClusterNotFoundError

        region, instances = self._cluster_instances(check_cluster_name(name))
        if region is None:
            raise ClusterNotFoundError(f"no cluster named {name!r} on cloud 'aws'")
        self._start_instances(region, instances)
        ready = self._wait_running(region, [inst["InstanceId"] for inst in instances])
        tags = _tags(instances[0].get("Tags"))
        return self._handle(name, region, ready, None, price=float(tags.get(TAG_PRICE, 0.0) or 0.0))

    def teardown(self, name: str) -> None:
        """Terminate every instance of the cluster, wait until all are terminated, then delete its security groups."""
        check_cluster_name(name)
        per_region = self._instances(name)
        for region, instances in per_region.items():
            self._terminate_and_wait(region, [inst["InstanceId"] for inst in instances])
            log.info("aws: terminated %d instance(s) of cluster %r in %s", len(instances), name, region)
        self._delete_security_groups(name)

    def _delete_security_groups(self, name: str) -> None:
        from botocore.exceptions import ClientError

        filters = [
            {"Name": f"tag:{TAG_CLUSTER}", "Values": [name]},
            {"Name": f"tag:{TAG_MANAGED_BY}", "Values": [MANAGED_BY]},
        ]
        for region in self._lookup_regions():
            ec2 = self.ec2(region)
            groups = self._call("DescribeSecurityGroups", ec2.describe_security_groups, Filters=filters)
            for group in groups["SecurityGroups"]:
                deadline = time.monotonic() + self.launch_timeout
                while True:
                    try:
                        self._call("DeleteSecurityGroup", ec2.delete_security_group, GroupId=group["GroupId"])
                        break
                    except ClientError as exc:
                        code = error_code(exc)
                        if code == "InvalidGroup.NotFound":
                            break
                        # Network interfaces of terminated instances linger a little while on EC2.
                        if code != "DependencyViolation" or time.monotonic() > deadline:
                            raise AwsApiError(
                                f"aws: DeleteSecurityGroup {group['GroupId']} in {region}: {_error_message(exc)}"
                            ) from None
                        time.sleep(self.poll_interval)

    def list_clusters(self) -> list[ClusterRecord]:
        clusters: dict[str, list[dict[str, Any]]] = {}
        for instances in self._instances(None).values():
            for inst in instances:
                cluster = _tags(inst.get("Tags")).get(TAG_CLUSTER)
                if cluster:
                    clusters.setdefault(cluster, []).append(inst)
        records = []
        for cluster, instances in sorted(clusters.items()):
            states = {inst["State"]["Name"] for inst in instances}
            wanted = int(_tags(instances[0].get("Tags")).get(TAG_NUM_NODES, len(instances)))
            if states == {"running"} and len(instances) == wanted:
                status = ClusterStatus.UP
            elif states == {"stopped"} and len(instances) == wanted:
                status = ClusterStatus.STOPPED
            else:
                status = ClusterStatus.INIT
            records.append(ClusterRecord(cluster, status, len(instances)))
        return records


class _CapacityFailure(Exception):
    """This zone cannot take the request now; the next zone or region may."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Login users of common images, by a word in the image's name or description (else ``ubuntu``).
_IMAGE_USERS = (
    (("amzn", "amazon linux", "al2023", "rhel", "red hat", "suse", "sles"), "ec2-user"),
    (("debian",), "admin"),
    (("centos",), "centos"),
    (("fedora",), "fedora"),
    (("rocky",), "rocky"),
)


def default_user(image: Mapping[str, Any]) -> str:
    """The usual login user of an image, from its name and description."""
    text = f"{image.get('Name', '')} {image.get('Description', '')}".lower()
    for words, user in _IMAGE_USERS:
        if any(word in text for word in words):
            return user
    return DEFAULT_SSH_USER


def _check_cidr(value: object) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise SkyConfigError(
            f"aws.ssh_cidr: invalid value {value!r}; accepted: a CIDR such as 203.0.113.0/24"
        ) from None


def _check_subnets(value: object) -> str | dict[str, str | list[str]] | None:
    accepted = "a subnet id 'subnet-...', or a dict {region or zone: 'subnet-...' or [ids]}"
    if value is None:
        return None
    if isinstance(value, str):
        if not value.startswith("subnet-"):
            raise SkyConfigError(f"aws.subnet_ids: invalid value {value!r}; accepted: {accepted}")
        return value
    if isinstance(value, Mapping):
        out: dict[str, str | list[str]] = {}
        for key, item in value.items():
            ids = [item] if isinstance(item, str) else item
            if not isinstance(ids, list | tuple) or not ids or not all(
                isinstance(i, str) and i.startswith("subnet-") for i in ids
            ):
                raise SkyConfigError(f"aws.subnet_ids.{key}: invalid value {item!r}; accepted: {accepted}")
            out[str(key)] = item if isinstance(item, str) else list(ids)
        return out
    raise SkyConfigError(f"aws.subnet_ids: invalid value {value!r:.100}; accepted: {accepted}")
