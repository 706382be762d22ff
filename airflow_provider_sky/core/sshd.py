"""A private OpenSSH server with its own home directory, for one local-cloud node.

The server runs as the current user on a loopback address. Logins are forced
through a command that sets ``HOME`` to the node's own directory and
changes into it, so ``~/data`` differs between nodes for commands, SFTP and
rsync alike, and that tags every process of the session with the node's
marker so teardown can find processes that detached from the session.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_sky.core.errors import SkyError
from airflow_provider_sky.core.runner import probe_tcp

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")
SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
)
NODE_MARKER_ENV = "SKY_AIRFLOW_NODE"
INSTALL_HINT = "install OpenSSH's server (Debian/Ubuntu: apt-get install -y openssh-server rsync)"


def find_sshd() -> str:
    for path in SSHD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sshd")
    if found:
        return found
    raise SkyError(f"the local cloud needs an sshd binary and none was found; {INSTALL_HINT}")


def _find_sftp_server() -> str:
    for path in SFTP_SERVER_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return "internal-sftp"


@dataclass
class SshdNode:
    """Files of one private sshd, all under ``directory``."""

    directory: Path

    @property
    def home(self) -> Path:
        return self.directory / "home"

    @property
    def config_path(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def pid_path(self) -> Path:
        return self.directory / "sshd.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def host_key_path(self) -> Path:
        return self.directory / "host_key"

    @property
    def marker(self) -> str:
        """Value of ``SKY_AIRFLOW_NODE`` in every process started through this server."""
        return str(self.directory)

    def prepare(self, authorized_key: str, host_private_key: str) -> None:
        """Write the host key, authorized key and home directory."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        fd = os.open(self.host_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(host_private_key.strip() + "\n")
        (self.directory / "authorized_keys").write_text(authorized_key.strip() + "\n")

    def forced_command(self) -> str:
        """Run by the login shell for every session: the node's own HOME, and a marker on its processes.

        Written inline (not as a script) to spare one exec per command; it must stay POSIX sh,
        as the login shell may be dash.
        """
        home = shlex.quote(str(self.home))
        marker = shlex.quote(self.marker)
        return (
            f"HOME={home}; export HOME; {NODE_MARKER_ENV}={marker}; export {NODE_MARKER_ENV}; "
            'cd "$HOME" || exit 1; '
            'if [ -z "$SSH_ORIGINAL_COMMAND" ]; then exec /bin/bash -l; fi; '
            'exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"'
        )

    def write_config(self, address: str, port: int) -> None:
        lines = [
            f"Port {port}",
            f"ListenAddress {address}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pid_path}",
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
            f"ForceCommand {self.forced_command()}",
            f"Subsystem sftp {_find_sftp_server()}",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AuthenticationMethods publickey",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            # Multi-node runs open many sessions at once; the default 10:30:100 drops banners.
            "MaxStartups 200",
            # Debian's bash sources ~/.bashrc of the real user when started by sshd unless SHLVL
            # shows it is nested; that rc file belongs to this machine, not to the node.
            "SetEnv SHLVL=1",
            "MaxSessions 64",
            "ClientAliveInterval 30",
            "LogLevel ERROR",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.read_pid()
        return pid is not None and _process_has_arg(pid, str(self.config_path))

    def start(self, address: str, port: int, timeout: float = 10.0) -> None:
        """Start sshd as a daemon (it outlives this process) and wait until it accepts TCP.

        Raises :class:`PortInUseError` when the port was taken, so callers can pick another.
        """
        if os.geteuid() == 0:
            # Root's sshd refuses to start without its privilege-separation directory.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.write_config(address, port)
        self.pid_path.unlink(missing_ok=True)
        self.log_path.write_text("")
        # Without -D sshd daemonizes itself, so the node survives the process that launched it.
        result = subprocess.run(
            [find_sshd(), "-f", str(self.config_path), "-E", str(self.log_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise SkyError(f"sshd failed to start for {self.directory}: {result.stderr.strip() or result.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log_path.read_text(errors="replace")
            if "Address already in use" in log or "Cannot bind any address" in log:
                self.stop()
                raise PortInUseError(f"{address}:{port}")
            if self.read_pid() is not None and probe_tcp(address, port, timeout=0.2):
                return
            time.sleep(0.01)
        self.stop()
        raise SkyError(f"sshd for {self.directory} did not accept connections within {timeout:.0f}s: {log[-500:]}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and every process its sessions started, detached ones included."""
        pid = self.read_pid()
        if pid is not None and _process_has_arg(pid, str(self.config_path)):
            # Per-connection sshd children outlive the listener while clients hold their
            # connections open, so they go too.
            sessions = descendants(pid)
            _signal(pid, signal.SIGTERM)
            for child in sessions:
                _signal(child, signal.SIGTERM)
            _wait_gone(pid, timeout, str(self.config_path))
            _wait_all_gone(sessions, timeout)
        kill_marked_processes(NODE_MARKER_ENV, self.marker, timeout=timeout)
        self.pid_path.unlink(missing_ok=True)


class PortInUseError(SkyError):
    """The chosen port was taken between choosing it and sshd binding it."""


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _process_has_arg(pid: int, arg: str) -> bool:
    """Whether ``pid`` is alive and was started with ``arg`` (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # sshd rewrites its title into one string ("sshd: /usr/sbin/sshd -f CONFIG ... [listener]"),
    # so match the argument as a whole word of either form.
    words = cmdline.replace(b"\0", b" ").split()
    return arg.encode() in words


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int, timeout: float, arg: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_has_arg(pid, arg):
            return
        time.sleep(0.01)
    _signal(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _wait_all_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        if not pids:
            return
        time.sleep(0.01)
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def marked_processes(env_name: str, value: str) -> list[int]:
    """PIDs of this user's processes whose environment has ``env_name=value``."""
    needle = f"{env_name}={value}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry))
    return pids


def kill_marked_processes(env_name: str, value: str, timeout: float = 10.0) -> None:
    """SIGTERM every marked process, then SIGKILL what is left at the deadline."""
    pids = marked_processes(env_name, value)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        if pids:
            time.sleep(0.02)
    for pid in marked_processes(env_name, value):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while marked_processes(env_name, value) and time.monotonic() < deadline:
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
