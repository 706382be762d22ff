"""Copy files between this machine and cluster nodes, incrementally.

rsync over the ``ssh`` client when both sides have rsync; SFTP otherwise (files
whose size and whole-second mtime match are skipped). Both use the node's pinned
host key: rsync gets a private known_hosts file with ``StrictHostKeyChecking=yes``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from airflow_provider_sky.core.errors import SkyConfigError, SkyError
from airflow_provider_sky.core.runner import NodeConnection, SshRunner
from airflow_provider_sky.core.shell import remote_path

log = logging.getLogger(__name__)


@dataclass
class TransferStats:
    files_sent: int = 0
    bytes_sent: int = 0
    files_skipped: int = 0
    files_deleted: int = 0
    method: str = ""

    def add(self, other: TransferStats) -> None:
        self.files_sent += other.files_sent
        self.bytes_sent += other.bytes_sent
        self.files_skipped += other.files_skipped
        self.files_deleted += other.files_deleted
        self.method = self.method or other.method


class Transfer:
    """Uploads and downloads for one cluster's nodes; owns a private dir for the key and known_hosts."""

    def __init__(self, runner: SshRunner, private_key: str, *, force_sftp: bool = False) -> None:
        self.runner = runner
        self._private_key = private_key
        self.force_sftp = force_sftp
        self._tmpdir: str | None = None
        self._remote_rsync: dict[int, bool] = {}

    # -- rsync plumbing ------------------------------------------------------------------

    def _use_rsync(self, conn: NodeConnection) -> bool:
        if self.force_sftp or shutil.which("rsync") is None or shutil.which("ssh") is None:
            return False
        rank = conn.node.rank
        if rank not in self._remote_rsync:
            self._remote_rsync[rank] = conn.run("command -v rsync >/dev/null 2>&1").exit_code == 0
        return self._remote_rsync[rank]

    def _private_dir(self) -> str:
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="sky-airflow-ssh-")
            key_path = os.path.join(self._tmpdir, "key")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self._private_key.strip() + "\n")
        return self._tmpdir

    def ssh_command(self, conn: NodeConnection) -> str:
        """The ``ssh`` invocation rsync uses for a node: its pinned key only, no agent, no prompts."""
        node = conn.node
        if node.host_key is None:
            conn.client()  # first contact pins the key
        directory = self._private_dir()
        known_hosts = os.path.join(directory, f"known_hosts-{node.rank}")
        with open(known_hosts, "w") as fh:
            fh.write(f"{node.known_hosts_name} {node.host_key}\n")
        options = [
            "ssh",
            "-p",
            str(node.ssh_port),
            "-i",
            os.path.join(directory, "key"),
            "-l",
            node.ssh_user,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"ConnectTimeout={int(conn.connect_timeout)}",
        ]
        return " ".join(shlex.quote(option) for option in options)

    def _rsync(self, conn: NodeConnection, args: list[str]) -> TransferStats:
        command = ["rsync", "-a", "-s", "--stats", "-e", self.ssh_command(conn), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SkyError(
                f"node {conn.node.rank}: rsync failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        return _parse_rsync_stats(result.stdout)

    # -- public API ----------------------------------------------------------------------

    def upload(
        self,
        local: str | os.PathLike[str],
        remote: str,
        *,
        ranks: Sequence[int] | None = None,
        delete: bool = False,
        exclude: Sequence[str] = (),
    ) -> TransferStats:
        """Copy a local file, or a directory's contents, to ``remote`` on the chosen nodes (all by default)."""
        source = Path(local).expanduser()
        if not source.exists():
            raise SkyConfigError(f"upload source {str(source)!r} does not exist")
        target = remote_path(remote)
        parent = target if source.is_dir() else (posixpath.dirname(target) or ".")
        self.runner.run(f"mkdir -p {shlex.quote(parent)}", ranks=ranks)

        def one(conn: NodeConnection) -> TransferStats:
            if self._use_rsync(conn):
                args = [f"--exclude={pattern}" for pattern in exclude]
                if delete:
                    args.append("--delete")
                src = f"{source}/" if source.is_dir() else str(source)
                stats = self._rsync(conn, [*args, src, f"{conn.node.ip}:{target}"])
                stats.method = "rsync"
                return stats
            return _sftp_upload(conn, source, target, delete, exclude)

        total = TransferStats()
        for stats in self.runner.map(one, ranks):
            total.add(stats)
        return total

    def download(
        self,
        remote: str,
        local: str | os.PathLike[str],
        *,
        rank: int = 0,
        delete: bool = False,
        exclude: Sequence[str] = (),
    ) -> TransferStats:
        """Copy a remote file, or a remote directory's contents, from one node to ``local``."""
        destination = Path(local).expanduser()
        source = remote_path(remote)

        def one(conn: NodeConnection) -> TransferStats:
            is_dir = conn.run(f"test -d {shlex.quote(source)}").exit_code == 0
            exists = is_dir or conn.run(f"test -e {shlex.quote(source)}").exit_code == 0
            if not exists:
                raise SkyConfigError(f"download source {remote!r} does not exist on node {conn.node.rank}")
            (destination if is_dir else destination.parent).mkdir(parents=True, exist_ok=True)
            if self._use_rsync(conn):
                args = [f"--exclude={pattern}" for pattern in exclude]
                if delete:
                    args.append("--delete")
                src = f"{conn.node.ip}:{source}/" if is_dir else f"{conn.node.ip}:{source}"
                stats = self._rsync(conn, [*args, src, f"{destination}/" if is_dir else str(destination)])
                stats.method = "rsync"
                return stats
            return _sftp_download(conn, source, destination, is_dir, delete, exclude)

        return self.runner.map(one, [rank])[0]

    def close(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


def _parse_rsync_stats(output: str) -> TransferStats:
    stats = TransferStats()
    for line in output.splitlines():
        key, _, value = line.partition(":")
        number = value.strip().split(" ")[0].replace(",", "")
        if key == "Number of regular files transferred" and number.isdigit():
            stats.files_sent = int(number)
        elif key == "Total transferred file size" and number.isdigit():
            stats.bytes_sent = int(number)
        elif key == "Number of deleted files" and number.isdigit():
            stats.files_deleted = int(number)
    return stats


def _excluded(relative: str, exclude: Sequence[str]) -> bool:
    name = posixpath.basename(relative)
    return any(fnmatch(relative, pattern) or fnmatch(name, pattern) for pattern in exclude)


def _local_tree(source: Path, exclude: Sequence[str]) -> tuple[list[str], list[str]]:
    """(directories, files) below ``source`` as POSIX paths relative to it."""
    dirs: list[str] = []
    files: list[str] = []
    for current, subdirs, names in os.walk(source):
        rel_dir = Path(current).relative_to(source).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        subdirs[:] = [d for d in subdirs if not _excluded(posixpath.join(rel_dir, d), exclude)]
        dirs.extend(posixpath.join(rel_dir, d) for d in subdirs)
        files.extend(posixpath.join(rel_dir, n) for n in names if not _excluded(posixpath.join(rel_dir, n), exclude))
    return dirs, files


def _sftp_upload(
    conn: NodeConnection, source: Path, target: str, delete: bool, exclude: Sequence[str]
) -> TransferStats:
    sftp = conn.sftp()
    stats = TransferStats(method="sftp")
    if not source.is_dir():
        _sftp_put_if_changed(sftp, source, target, stats)
        return stats
    dirs, files = _local_tree(source, exclude)
    for rel in dirs:
        path = posixpath.join(target, rel)
        try:
            sftp.stat(path)
        except FileNotFoundError:
            sftp.mkdir(path)
    for rel in files:
        _sftp_put_if_changed(sftp, source / rel, posixpath.join(target, rel), stats)
    if delete:
        keep = set(dirs) | set(files)
        for rel, is_dir in sorted(_sftp_tree(sftp, target), reverse=True):
            if rel not in keep and not _excluded(rel, exclude):
                path = posixpath.join(target, rel)
                (sftp.rmdir if is_dir else sftp.remove)(path)
                stats.files_deleted += 0 if is_dir else 1
    return stats


def _sftp_put_if_changed(sftp, local: Path, remote: str, stats: TransferStats) -> None:
    local_stat = local.stat()
    try:
        remote_stat = sftp.stat(remote)
        if remote_stat.st_size == local_stat.st_size and int(remote_stat.st_mtime or 0) == int(local_stat.st_mtime):
            stats.files_skipped += 1
            return
    except FileNotFoundError:
        pass
    sftp.put(str(local), remote)
    sftp.utime(remote, (int(local_stat.st_atime), int(local_stat.st_mtime)))
    sftp.chmod(remote, stat.S_IMODE(local_stat.st_mode))
    stats.files_sent += 1
    stats.bytes_sent += local_stat.st_size


def _sftp_tree(sftp, root: str, prefix: str = "") -> list[tuple[str, bool]]:
    entries: list[tuple[str, bool]] = []
    for attr in sftp.listdir_attr(posixpath.join(root, prefix) if prefix else root):
        rel = posixpath.join(prefix, attr.filename) if prefix else attr.filename
        is_dir = stat.S_ISDIR(attr.st_mode or 0)
        entries.append((rel, is_dir))
        if is_dir:
            entries.extend(_sftp_tree(sftp, root, rel))
    return entries


def _sftp_download(
    conn: NodeConnection, source: str, destination: Path, is_dir: bool, delete: bool, exclude: Sequence[str]
) -> TransferStats:
    sftp = conn.sftp()
    stats = TransferStats(method="sftp")
    entries = _sftp_tree(sftp, source) if is_dir else [("", False)]
    remote_files = set()
    for rel, entry_is_dir in entries:
        if rel and _excluded(rel, exclude):
            continue
        local = destination / rel if rel else destination
        if entry_is_dir:
            local.mkdir(parents=True, exist_ok=True)
            continue
        remote_files.add(rel)
        remote = posixpath.join(source, rel) if rel else source
        remote_stat = sftp.stat(remote)
        if local.exists():
            local_stat = local.stat()
            if local_stat.st_size == remote_stat.st_size and int(local_stat.st_mtime) == int(remote_stat.st_mtime or 0):
                stats.files_skipped += 1
                continue
        local.parent.mkdir(parents=True, exist_ok=True)
        sftp.get(remote, str(local))
        os.utime(local, (int(remote_stat.st_atime or 0), int(remote_stat.st_mtime or 0)))
        stats.files_sent += 1
        stats.bytes_sent += remote_stat.st_size or 0
    if delete and is_dir:
        _, local_files = _local_tree(destination, exclude)
        for rel in local_files:
            if rel not in remote_files:
                (destination / rel).unlink()
                stats.files_deleted += 1
    return stats
