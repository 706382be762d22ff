"""Run commands on cluster nodes over SSH (paramiko), one reused connection per node.

Host keys are pinned: a node whose ``host_key`` is still empty has the key it
presents at first contact recorded (and reported through ``on_host_key``);
from then on any other key is refused with :class:`HostKeyMismatchError`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sky.core.errors import (
    CommandTimeoutError,
    HostKeyMismatchError,
    SkyConfigError,
    SshConnectError,
)
from airflow_provider_sky.core.handle import NodeInfo
from airflow_provider_sky.core.keys import fingerprint, host_key_line, load_pkey
from airflow_provider_sky.core.shell import env_exports

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

#: ``on_line(rank, stream, line)``: stream is "stdout" or "stderr"; the line has no newline.
LineCallback = Callable[[int, str, str], None]

DEFAULT_CONNECT_TIMEOUT = 10.0


@dataclass
class CommandResult:
    """The outcome of one command on one node."""

    rank: int
    exit_code: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class RunResult:
    """Per-node results of a command run on several nodes, in rank order."""

    results: list[CommandResult] = field(default_factory=list)

    @property
    def exit_codes(self) -> list[int]:
        return [r.exit_code for r in self.results]

    @property
    def stdout(self) -> list[str]:
        return [r.stdout for r in self.results]

    @property
    def stderr(self) -> list[str]:
        return [r.stderr for r in self.results]

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.exit_codes)


def wrap_command(command: str, envs: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The exact string sent to the node: bash, with env values exported literally.

    Values are single-quoted by :func:`shlex.quote`, so quotes, ``$``, ``;``,
    backticks and newlines arrive unchanged; names are checked to be identifiers.
    """
    script = env_exports(envs or {})
    if cwd:
        script += f"cd {shlex.quote(cwd)} || exit 1\n"
    script += command
    return f"bash -c {shlex.quote(script)}"


class _PinningPolicy:
    """paramiko policy for a host we hold no key for: pin it now, or refuse if pinned."""

    def __init__(self, node: NodeInfo, on_host_key: Callable[[NodeInfo], None] | None) -> None:
        self.node = node
        self.on_host_key = on_host_key

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        seen = host_key_line(key)
        if self.node.host_key is not None:
            raise HostKeyMismatchError(_mismatch_message(self.node, seen))
        self.node.host_key = seen
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.info("Pinned host key %s of node %d (%s)", fingerprint(seen), self.node.rank, hostname)
        if self.on_host_key is not None:
            self.on_host_key(self.node)


def _mismatch_message(node: NodeInfo, seen: str) -> str:
    return (
        f"host key mismatch for node {node.rank} ({node.known_hosts_name}): pinned "
        f"{fingerprint(node.host_key or '')}, server presented {fingerprint(seen)}. The host was replaced "
        "or someone is intercepting the connection; refusing to connect."
    )


class NodeConnection:
    """A lazily opened, reused SSH connection to one node (thread-safe)."""

    def __init__(
        self,
        node: NodeInfo,
        private_key: str,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        on_host_key: Callable[[NodeInfo], None] | None = None,
    ) -> None:
        self.node = node
        self._private_key = private_key
        self.connect_timeout = connect_timeout
        self.on_host_key = on_host_key
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    def client(self) -> paramiko.SSHClient:
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return self._client
                self._close_locked()
            self._client = self._connect()
            return self._client

    def _connect(self) -> paramiko.SSHClient:
        import paramiko

        node = self.node
        client = paramiko.SSHClient()
        if node.host_key:
            key_type, key_b64 = node.host_key.split()[:2]
            client.get_host_keys().add(node.known_hosts_name, key_type, _pkey_from_line(key_type, key_b64))
        client.set_missing_host_key_policy(_PinningPolicy(node, self.on_host_key))  # type: ignore[arg-type]
        try:
            client.connect(
                node.ip,
                port=node.ssh_port,
                username=node.ssh_user,
                pkey=load_pkey(self._private_key),
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                look_for_keys=False,
                allow_agent=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyMismatchError(_mismatch_message(node, host_key_line(exc.key))) from None
        except HostKeyMismatchError:
            client.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise SshConnectError(
                f"node {node.rank} ({node.ssh_user}@{node.ip}:{node.ssh_port}): cannot connect: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)
            # Commands are a few small packets each way; Nagle plus delayed ACKs would add ~40 ms per round trip.
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        return client

    def sftp(self) -> paramiko.SFTPClient:
        client = self.client()
        with self._lock:
            if self._sftp is None or self._sftp.get_channel() is None or self._sftp.get_channel().closed:  # type: ignore[union-attr]
                self._sftp = client.open_sftp()
            return self._sftp

    def run(
        self,
        command: str,
        *,
        on_line: LineCallback | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` (already a full shell string) and wait for it.

        Output is decoded as UTF-8 (bad bytes replaced) and both returned and,
        line by line as it arrives, passed to ``on_line``.
        """
        client = self.client()
        transport = client.get_transport()
        if transport is None:
            raise SshConnectError(f"node {self.node.rank}: connection lost")
        channel = transport.open_session(timeout=self.connect_timeout)
        try:
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            return self._collect(channel, on_line, timeout)
        finally:
            channel.close()

    def _collect(self, channel: Any, on_line: LineCallback | None, timeout: float | None) -> CommandResult:
        rank = self.node.rank
        buffers = {"stdout": bytearray(), "stderr": bytearray()}
        pending = {"stdout": bytearray(), "stderr": bytearray()}
        deadline = None if timeout is None else time.monotonic() + timeout

        def feed(stream: str, data: bytes) -> None:
            buffers[stream] += data
            if on_line is None:
                return
            pending[stream] += data
            *lines, rest = bytes(pending[stream]).split(b"\n")
            pending[stream] = bytearray(rest)
            for line in lines:
                on_line(rank, stream, line.decode("utf-8", "replace"))

        while True:
            got = False
            while channel.recv_ready():
                feed("stdout", channel.recv(65536))
                got = True
            while channel.recv_stderr_ready():
                feed("stderr", channel.recv_stderr(65536))
                got = True
            # Exit status plus EOF means the remote side flushed everything before exiting.
            drained = not channel.recv_ready() and not channel.recv_stderr_ready()
            if channel.exit_status_ready() and drained and (channel.eof_received or channel.closed):
                break
            if got:
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise CommandTimeoutError(f"node {rank}: command did not finish within {timeout:g}s")
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            select.select([channel], [], [], wait)
        if on_line is not None:
            for stream, rest in pending.items():
                if rest:
                    on_line(rank, stream, bytes(rest).decode("utf-8", "replace"))
        return CommandResult(
            rank=rank,
            exit_code=channel.recv_exit_status(),
            stdout=buffers["stdout"].decode("utf-8", "replace"),
            stderr=buffers["stderr"].decode("utf-8", "replace"),
        )

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except (OSError, EOFError):
                pass
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None


def _pkey_from_line(key_type: str, key_b64: str) -> paramiko.PKey:
    import paramiko

    try:
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
    except (paramiko.SSHException, ValueError, binascii.Error) as exc:
        raise SkyConfigError(f"cluster handle: pinned host key {key_type} is not usable: {exc}") from None


class SshRunner:
    """Commands on the nodes of one cluster, in parallel, over one connection per node."""

    def __init__(
        self,
        nodes: Sequence[NodeInfo],
        private_key: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        on_host_key: Callable[[NodeInfo], None] | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.connections = [NodeConnection(node, private_key, connect_timeout, on_host_key) for node in self.nodes]
        self._pool: ThreadPoolExecutor | None = None

    def _ranks(self, ranks: Sequence[int] | None) -> list[int]:
        if ranks is None:
            return list(range(len(self.nodes)))
        bad = [r for r in ranks if not 0 <= r < len(self.nodes)]
        if bad:
            raise SkyConfigError(f"node rank {bad[0]} is out of range; the cluster has ranks 0..{len(self.nodes) - 1}")
        return list(ranks)

    def map(self, fn: Callable[[NodeConnection], Any], ranks: Sequence[int] | None = None) -> list[Any]:
        """Call ``fn`` on each chosen node's connection in parallel; results in rank order.

        The first exception (in rank order) is raised after every call has ended.
        """
        chosen = self._ranks(ranks)
        if len(chosen) == 1:
            return [fn(self.connections[chosen[0]])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(64, max(4, len(self.nodes))))
        futures = [self._pool.submit(fn, self.connections[r]) for r in chosen]
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def run(
        self,
        command: str | Callable[[int], str],
        *,
        ranks: Sequence[int] | None = None,
        on_line: LineCallback | None = None,
        timeout: float | None = None,
        stdin: bytes | Callable[[int], bytes] | None = None,
    ) -> RunResult:
        """Run a shell string (or ``command(rank)``) on the chosen nodes in parallel."""

        def one(conn: NodeConnection) -> CommandResult:
            rank = conn.node.rank
            text = command(rank) if callable(command) else command
            data = stdin(rank) if callable(stdin) else stdin
            return conn.run(text, on_line=on_line, timeout=timeout, stdin=data)

        return RunResult(self.map(one, ranks))

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def probe_tcp(ip: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP at ip:port (a cheap pre-check before an SSH handshake)."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False
