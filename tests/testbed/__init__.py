"""Real peers for the AWS tests: a moto server (EC2, S3, STS) and SSH hosts behind emulated instances.

* :class:`MotoServer` runs ``moto_server`` on a free loopback port with instance-type, AMI and
  key-pair validation on, and stops it by PID.
* :class:`NetnsHosts` makes hosts with their own IP addresses: one network namespace per host,
  joined to a bridge in the root namespace, each running a private sshd (:class:`SshdNode`).
* :class:`InstanceHosts` "boots" emulated EC2 instances: it watches the emulator and, for each
  instance running in a watched subnet, starts a namespace host at the instance's private IP with
  the instance's key pair authorized; a stopped instance's sshd stops (its disk and host key stay),
  a terminated instance's host goes.

Everything is cleaned up by the owner's ``close()``/``stop()``, which the fixtures call in every case.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_sky.core.keys import generate_private_key
from airflow_provider_sky.core.runner import probe_tcp
from airflow_provider_sky.core.sshd import SshdNode, find_sshd
from airflow_provider_sky.core.sshd import free_port as sshd_free_port

MOTO_VALIDATION_ENV = {
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "true",
}
TEST_KEY_ID = "testing"
TEST_SECRET = "testing"


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:g}s")
        time.sleep(interval)


def free_port() -> int:
    return sshd_free_port("127.0.0.1")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL at the deadline; always reaps the process."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class MotoServer:
    """``moto_server`` on loopback with the three validations on.

    :param bin_dir: the directory holding the venv's ``moto_server`` script.
    :param log_path: where the server's output goes.
    """

    def __init__(self, bin_dir: Path, log_path: Path) -> None:
        self.bin_dir = bin_dir
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        for _ in range(5):
            self.port = free_port()
            env = {**os.environ, **MOTO_VALIDATION_ENV}
            # The server must not see the tests' AWS settings (it has no credentials of its own).
            for name in [n for n in env if n.startswith("AWS_")]:
                env.pop(name)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                [str(self.bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            try:
                wait_until(lambda: self.proc is None or self.proc.poll() is not None or self._healthy(), timeout,
                           "moto server answering", interval=0.05)
            except TimeoutError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return self
            self.stop()  # lost the port race: try another one
        raise RuntimeError(f"moto server did not start; see {self.log_path}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def reset(self) -> None:
        """Forget every resource (all services, all regions)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def boto3_session(region: str = "us-east-1") -> Any:
    import boto3

    return boto3.Session(aws_access_key_id=TEST_KEY_ID, aws_secret_access_key=TEST_SECRET, region_name=region)


def netns_unavailable_reason() -> str | None:
    """Why namespace hosts cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's 'ip' is missing (apt-get install iproute2)"
    try:
        find_sshd()
    except Exception as exc:
        return str(exc)
    probe = f"skyprobe-{os.getpid()}-{secrets.token_hex(2)}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result


def pick_subnet() -> ipaddress.IPv4Network:
    """A 10.213.N.0/24 that no interface of this machine uses yet (never the same subnet twice)."""
    used = _run("ip", "-o", "-4", "addr", "show").stdout
    for third in range(0, 256):
        network = ipaddress.ip_network(f"10.213.{third}.0/24")
        if f" 10.213.{third}." not in used:
            return network
    raise RuntimeError("no free 10.213.N.0/24 subnet")


@dataclass
class _Host:
    name: str
    veth: str
    ip: str
    node: SshdNode
    running: bool = False


class NetnsHosts:
    """Hosts with their own addresses on one /24: a bridge here, one namespace + veth + sshd per host.

    :param root: directory for the hosts' sshd files (host keys, homes, logs).
    :param network: the /24 (its ``.1`` is the bridge, the VPC router's address on EC2).
    """

    def __init__(self, root: Path, network: ipaddress.IPv4Network) -> None:
        self.root = root
        self.network = network
        self.tag = secrets.token_hex(2)
        self.bridge = f"skybr{self.tag}"
        self.hosts: dict[str, _Host] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._bridge_up = False

    def setup(self) -> NetnsHosts:
        # Who owns this tag: a run killed before its cleanup is swept by the next one (sweep_stale).
        OWNERS.mkdir(parents=True, exist_ok=True)
        (OWNERS / self.tag).write_text(str(os.getpid()))
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._bridge_up = True
        _run("ip", "addr", "add", f"{self.network[1]}/{self.network.prefixlen}", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        return self

    def add(self, key: str, ip: str, authorized_key: str, host_private_key: str) -> _Host:
        """Create (or restart) host ``key`` at ``ip`` with sshd on port 22, and wait until it accepts TCP."""
        with self._lock:
            host = self.hosts.get(key)
            if host is None:
                index = self._count
                self._count += 1
                host = _Host(f"skyh-{self.tag}-{index}", f"skv{self.tag}{index}", ip, SshdNode(self.root / key))
                self.hosts[key] = host
                self._create_namespace(host)
                host.node.prepare(authorized_key, host_private_key)
        host.node.write_config(ip, 22)
        host.node.pid_path.unlink(missing_ok=True)
        host.node.log_path.write_text("")
        _run("ip", "netns", "exec", host.name, find_sshd(), "-f", str(host.node.config_path),
             "-E", str(host.node.log_path))
        wait_until(lambda: host.node.read_pid() is not None and probe_tcp(ip, 22, timeout=0.3), 15, f"sshd on {ip}")
        host.running = True
        return host

    def _create_namespace(self, host: _Host) -> None:
        _run("ip", "netns", "add", host.name)
        _run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", f"{host.veth}p")
        _run("ip", "link", "set", f"{host.veth}p", "netns", host.name)
        _run("ip", "link", "set", host.veth, "master", self.bridge)
        _run("ip", "link", "set", host.veth, "up")
        inside = ("ip", "netns", "exec", host.name, "ip")
        _run(*inside, "link", "set", f"{host.veth}p", "name", "eth0")
        _run(*inside, "addr", "add", f"{host.ip}/{self.network.prefixlen}", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "route", "add", "default", "via", str(self.network[1]))

    def halt(self, key: str) -> None:
        """Stop a host's sshd and its sessions' processes (the host's files stay)."""
        host = self.hosts.get(key)
        if host is not None and host.running:
            host.node.stop()
            host.running = False

    def remove(self, key: str) -> None:
        """Stop a host and delete its namespace and veth."""
        host = self.hosts.pop(key, None)
        if host is None:
            return
        host.node.stop()
        _run("ip", "link", "del", host.veth, check=False)  # deletes the peer too
        _run("ip", "netns", "del", host.name, check=False)

    def close(self) -> None:
        for key in list(self.hosts):
            self.remove(key)
        if self._bridge_up:
            _run("ip", "link", "del", self.bridge, check=False)
            self._bridge_up = False
        (OWNERS / self.tag).unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this test bed still present (should be none after close())."""
        names = _run("ip", "netns", "list").stdout + _run("ip", "-o", "link", "show").stdout
        return [word for word in (f"skyh-{self.tag}-", self.bridge, f"skv{self.tag}") if word in names]


OWNERS = Path("/run/sky-airflow-testbed")


def sweep_stale() -> list[str]:
    """Remove namespaces, links and sshd of test beds whose process died without cleaning up (e.g. SIGKILL)."""
    removed: list[str] = []
    if not OWNERS.is_dir():
        return removed
    namespaces = _run("ip", "netns", "list", check=False).stdout.split()
    links = [line.split(":")[1].strip().split("@")[0] for line in _run("ip", "-o", "link", "show").stdout.splitlines()]
    for owner in OWNERS.iterdir():
        try:
            os.kill(int(owner.read_text()), 0)
            continue  # its run is still going
        except (ProcessLookupError, ValueError):
            pass
        tag = owner.name
        for name in [n for n in namespaces if n.startswith(f"skyh-{tag}-")]:
            pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
        for link in [name for name in links if name == f"skybr{tag}" or name.startswith(f"skv{tag}")]:
            _run("ip", "link", "del", link, check=False)
            removed.append(link)
        owner.unlink(missing_ok=True)
    return removed


class InstanceHosts:
    """Boots emulated instances in watched subnets as namespace hosts, following their EC2 state.

    :param hosts: where the hosts live.
    :param clients: ``(ec2 client, subnet ids)`` per region to watch.
    """

    def __init__(self, hosts: NetnsHosts, clients: Iterable[tuple[Any, list[str]]]) -> None:
        self.hosts = hosts
        self.clients = list(clients)
        self.errors: list[str] = []
        self.booted: list[str] = []
        self._host_keys: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="instance-hosts", daemon=True)

    def start(self) -> InstanceHosts:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(0.05)

    def sync(self) -> None:
        instances = []
        for client, subnets in self.clients:
            reply = client.describe_instances(Filters=[{"Name": "subnet-id", "Values": subnets}])
            instances += [(client, inst) for res in reply["Reservations"] for inst in res["Instances"]]
        # Halts first: a terminated instance's address may be handed to a new one.
        for _, inst in instances:
            state = inst["State"]["Name"]
            if state in ("shutting-down", "terminated"):
                self.hosts.remove(inst["InstanceId"])
            elif state in ("stopping", "stopped"):
                self.hosts.halt(inst["InstanceId"])
        for client, inst in instances:
            host = self.hosts.hosts.get(inst["InstanceId"])
            if inst["State"]["Name"] == "running" and (host is None or not host.running):
                self._boot(client, inst)

    def _boot(self, client: Any, inst: dict[str, Any]) -> None:
        instance_id = inst["InstanceId"]
        pairs = client.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)["KeyPairs"]
        # Like cloud-init: the key pair's public key is authorized; the host key is made once per instance.
        host_key = self._host_keys.setdefault(instance_id, generate_private_key())
        self.hosts.add(instance_id, inst["PrivateIpAddress"], pairs[0]["PublicKey"], host_key)
        self.booted.append(instance_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)


class TcpForwarder:
    """Forward ``listen_ip:port`` to ``127.0.0.1:target_port``: how namespace hosts reach the loopback emulator.

    Listens only on the test bed's own bridge address.
    """

    def __init__(self, listen_ip: str, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server((listen_ip, 0))
        self.address = f"{listen_ip}:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="tcp-forwarder", daemon=True)

    def start(self) -> TcpForwarder:
        self._thread.start()
        return self

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(5)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def ignore_errors() -> Any:
    try:
        yield
    except Exception as exc:  # cleanup of one part must not skip the others
        print(f"testbed cleanup: {type(exc).__name__}: {exc}")
