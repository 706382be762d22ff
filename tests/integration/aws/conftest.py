"""Fixtures of the AWS tests: one moto server per session; per test a clean emulator state, a VPC with
subnets in two regions, namespace hosts behind the instances, and a check through the emulator that no
instance is left alive afterwards.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.testbed import (
    InstanceHosts,
    MotoServer,
    NetnsHosts,
    boto3_session,
    ignore_errors,
    netns_unavailable_reason,
    pick_subnet,
    sweep_stale,
)

REGIONS = ("us-east-1", "us-west-2")
# Subnets of the test bed's /24 (as /26 blocks), by zone; the namespace hosts live on the same /24.
SUBNET_LAYOUT = {"us-east-1a": 0, "us-east-1b": 1, "us-west-2a": 2}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One emulator for the session. It is not reset between tests: a reset makes every region's EC2
    load its images again (seconds per test); tests use their own VPCs, keys and cluster names instead.
    At the end no instance may be alive in any of its regions."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "moto_server").exists():
        pytest.fail("moto_server is not installed: run scripts/bootstrap.sh (the dev extra brings moto[server])")
    if netns_unavailable_reason() is None:
        swept = sweep_stale()
        if swept:
            print(f"testbed: removed leftovers of a killed earlier run: {swept}")
    server = MotoServer(bin_dir, tmp_path_factory.mktemp("moto") / "moto.log").start()
    try:
        yield server
        left = live_instances(boto3_session(), server.endpoint)
        assert not left, f"instances alive in the emulator at the end of the session: {left}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_image(moto_server: MotoServer) -> str:
    """An Ubuntu image the emulator knows (the catalog's real AMI ids do not exist there)."""
    client = boto3_session().client("ec2", endpoint_url=moto_server.endpoint)
    images = client.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["ubuntu/images/*"]}])
    return str(images["Images"][0]["ImageId"])


def live_instances(session: Any, endpoint: str, regions: list[str] | None = None) -> list[str]:
    """``region:id:state`` of every instance that is not terminated, in ``regions`` (default: all of them)."""
    if regions is None:
        client = session.client("ec2", endpoint_url=endpoint)
        regions = [r["RegionName"] for r in client.describe_regions()["Regions"]]

    def one(region: str) -> list[str]:
        client = session.client("ec2", region_name=region, endpoint_url=endpoint)
        reply = client.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
        )
        found = [i for r in reply["Reservations"] for i in r["Instances"]]
        return [f"{region}:{i['InstanceId']}:{i['State']['Name']}" for i in found]

    with ThreadPoolExecutor(8) as pool:
        return [item for found in pool.map(one, regions) for item in found]


@dataclass
class AwsBed:
    """What a test needs to launch into the emulator."""

    endpoint: str
    session: Any
    network: Any
    subnets: dict[str, str]  # zone name -> subnet id
    image_id: str
    hosts: NetnsHosts | None = None
    instance_hosts: InstanceHosts | None = None
    skip_reason: str | None = None
    handlers: list[tuple[str, Callable[..., Any]]] = field(default_factory=list)

    def ec2(self, region: str = "us-east-1") -> Any:
        return self.session.client("ec2", region_name=region, endpoint_url=self.endpoint)

    def s3(self) -> Any:
        return self.session.client("s3", region_name="us-east-1", endpoint_url=self.endpoint)

    def subnet_ids(self) -> dict[str, list[str]]:
        """The cloud's ``subnet_ids`` setting: region -> its subnets."""
        out: dict[str, list[str]] = {}
        for zone, subnet in self.subnets.items():
            out.setdefault(zone[:-1], []).append(subnet)
        return out

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Cloud settings for a launch into the test bed's subnets, connecting to private IPs."""
        settings = {
            "boto3_session": self.session,
            "endpoint_url": self.endpoint,
            "regions": list(REGIONS),
            "subnet_ids": self.subnet_ids(),
            "use_internal_ips": True,
            "api_max_attempts": 1,  # injected 500s must reach the cloud as they are
            "poll_interval": 0.05,
            "launch_timeout": 60,
        }
        settings.update(overrides)
        return settings

    def require_hosts(self) -> None:
        if self.skip_reason:
            print(f"SKIPPED: {self.skip_reason}")
            pytest.skip(self.skip_reason)

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Register a botocore handler on the session the cloud uses (removed after the test)."""
        self.session.events.register(event, handler)
        self.handlers.append((event, handler))

    def live(self) -> list[str]:
        """Instances alive in the regions the tests launch into (the session's end checks every region)."""
        return live_instances(self.session, self.endpoint, list(REGIONS))


@pytest.fixture
def aws(moto_server: MotoServer, moto_image: str, sky_home: Path) -> Iterator[AwsBed]:
    session = boto3_session()
    skip_reason = netns_unavailable_reason()
    network = pick_subnet() if skip_reason is None else __import__("ipaddress").ip_network("10.213.0.0/24")
    blocks = list(network.subnets(new_prefix=26))
    subnets: dict[str, str] = {}
    vpcs: dict[str, str] = {}
    for zone, index in SUBNET_LAYOUT.items():
        region = zone[:-1]
        client = session.client("ec2", region_name=region, endpoint_url=moto_server.endpoint)
        if region not in vpcs:
            vpcs[region] = client.create_vpc(CidrBlock=str(network))["Vpc"]["VpcId"]
        subnets[zone] = client.create_subnet(VpcId=vpcs[region], CidrBlock=str(blocks[index]), AvailabilityZone=zone)[
            "Subnet"
        ]["SubnetId"]
    bed = AwsBed(moto_server.endpoint, session, network, subnets, moto_image, skip_reason=skip_reason)
    if skip_reason is None:
        bed.hosts = NetnsHosts(sky_home / "instance-hosts", network)
        watched = []
        for region in REGIONS:
            ids = [s for z, s in subnets.items() if z.startswith(region)]
            watched.append((session.client("ec2", region_name=region, endpoint_url=moto_server.endpoint), ids))
        try:
            bed.hosts.setup()
            bed.instance_hosts = InstanceHosts(bed.hosts, watched).start()
        except BaseException:
            bed.hosts.close()
            raise
    try:
        yield bed
    finally:
        for event, handler in bed.handlers:
            session.events.unregister(event, handler)
        left = bed.live()
        # Clean up before failing, so one broken test does not break the next ones.
        for item in left:
            region, instance_id, _ = item.split(":")
            with ignore_errors():
                bed.ec2(region).terminate_instances(InstanceIds=[instance_id])
        errors: list[str] = []
        leftovers: list[str] = []
        if bed.instance_hosts is not None:
            with ignore_errors():
                bed.instance_hosts.close()
            errors = bed.instance_hosts.errors
        if bed.hosts is not None:
            with ignore_errors():
                bed.hosts.close()
            leftovers = bed.hosts.leftovers()
        assert not left, f"instances left alive in the emulator after the test: {left}"
        assert not leftovers, f"namespaces or links left after the test: {leftovers}"
        assert not errors, f"the instance-host emulator failed: {errors[:3]}"


def ec2_error(code: str, message: str) -> Any:
    """A botocore response carrying EC2's XML error body with HTTP 500, as EC2 sends capacity errors."""
    from botocore.awsrequest import AWSResponse

    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    ).encode()

    class _Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    return AWSResponse("https://ec2.amazonaws.com/", 500, {"Content-Type": "text/xml"}, _Raw())


def request_params(request: Any) -> dict[str, str]:
    """The form parameters of an EC2 query request, plus its region (from the signature's scope)."""
    body = request.body
    text = body.decode() if isinstance(body, bytes) else str(body or "")
    params = {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}
    auth = request.headers.get("Authorization", b"")
    auth = auth.decode() if isinstance(auth, bytes) else auth
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    params["_region"] = scope[2] if len(scope) > 2 else ""
    return params
