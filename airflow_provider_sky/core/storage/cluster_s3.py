"""S3 <-> cluster nodes: streamed through this process over SFTP, or pulled/pushed by the nodes themselves."""

from __future__ import annotations

import logging
import posixpath
import shlex
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sky.core.errors import SkyConfigError, SkyError
from airflow_provider_sky.core.runner import NodeConnection, wrap_command
from airflow_provider_sky.core.shell import remote_path
from airflow_provider_sky.core.storage.engine import (
    _S3,
    ClusterLocation,
    Entry,
    S3Location,
    SyncStats,
    _filtered,
    _Options,
    _raise_s3,
    iter_chunks,
    run_parallel,
    selected,
)

if TYPE_CHECKING:
    import paramiko

    from airflow_provider_sky.core.cluster import Cluster

log = logging.getLogger(__name__)

# The path's kind (F, D, or M for missing), then NUL-separated (path, size, mtime) triples: any byte but
# NUL may occur in a file name.
_LIST = (
    'p={path}; if [ -f "$p" ]; then printf "F\\0\\0%s\\0%s\\0" "$(stat -c %s "$p")" "$(stat -c %Y "$p")"; '
    'elif [ -d "$p" ]; then printf "D\\0" && cd "$p" && find . -type f -printf "%P\\0%s\\0%T@\\0"; '
    'else printf "M\\0"; fi'
)


def remote_listing(conn: NodeConnection, path: str) -> tuple[dict[str, Entry], str]:
    """Files below a node's path (``""`` for the path itself when it is a file), and the path's kind.

    :returns: ``(entries, kind)`` with kind ``"file"``, ``"dir"`` or ``"missing"``.
    """
    result = conn.run(wrap_command(_LIST.format(path=shlex.quote(remote_path(path)))), timeout=300)
    if result.exit_code != 0:
        raise SkyError(f"node {conn.node.rank}: cannot list {path!r}: {result.stderr.strip()[-500:]}")
    kind, *fields = result.stdout.split("\0")
    entries: dict[str, Entry] = {}
    for index in range(0, len(fields) - 2, 3):
        entries[fields[index]] = Entry(int(fields[index + 1]), float(fields[index + 2]))
    return entries, {"F": "file", "D": "dir"}.get(kind, "missing")


class _SftpPool:
    """One SFTP session per (thread, node): paramiko's SFTP client is not safe to share between threads."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._local = threading.local()
        self._all: list[paramiko.SFTPClient] = []
        self._lock = threading.Lock()

    def get(self, rank: int) -> paramiko.SFTPClient:
        sessions = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        if rank not in sessions:
            sftp = self.cluster.runner.connections[rank].client().open_sftp()
            sessions[rank] = sftp
            with self._lock:
                self._all.append(sftp)
        return sessions[rank]

    def close(self) -> None:
        for sftp in self._all:
            try:
                sftp.close()
            except (OSError, EOFError):
                pass


def _ranks(cluster: Cluster, loc: ClusterLocation, nodes: Sequence[int] | None) -> list[int]:
    if loc.rank is not None:
        chosen = [loc.rank]
    else:
        chosen = list(nodes) if nodes is not None else list(range(len(cluster.nodes)))
    bad = [r for r in chosen if not 0 <= r < len(cluster.nodes)]
    if bad:
        raise SkyConfigError(f"nodes: rank {bad[0]} is out of range; the cluster has ranks 0..{len(cluster.nodes) - 1}")
    return chosen


def _run_with_stdin(cluster: Cluster, rank: int, script: str, data: bytes, what: str) -> str:
    result = cluster.runner.connections[rank].run(wrap_command(script), stdin=data, timeout=None)
    if result.exit_code != 0:
        raise SkyError(f"node {rank}: {what} failed (exit {result.exit_code}): {result.stderr.strip()[-1000:]}")
    return result.stdout


def s3_to_cluster(
    s3: _S3, cluster: Cluster, src: S3Location, dst: ClusterLocation, opts: _Options, nodes: Sequence[int] | None
) -> SyncStats:
    """Each changed object is read from S3 once and written to every node that needs it."""
    ranks = _ranks(cluster, dst, nodes)
    objects, single = s3.listing(src)
    objects = {"": objects[""]} if single else _filtered(objects, opts.include, opts.exclude)
    base = remote_path(dst.path)
    listings = cluster.runner.map(lambda conn: remote_listing(conn, base), ranks)
    stats = SyncStats(method="s3-worker")
    needs: dict[str, list[int]] = {}
    target_of: dict[int, str] = {}
    for rank, (files, kind) in zip(ranks, listings, strict=True):
        is_file = kind == "file"
        if single:
            # Into a directory (or a path ending in '/') the object keeps its name; otherwise it is the path.
            into_dir = dst.path.endswith("/") or kind == "dir"
            target_of[rank] = posixpath.join(base, posixpath.basename(src.key)) if into_dir else base
            current = files.get("") if is_file else files.get(posixpath.basename(src.key))
            have = {"": current} if current else {}
        else:
            target_of[rank] = base
            have = {rel: e for rel, e in files.items() if rel and selected(rel, opts.include, opts.exclude)}
        for rel, entry in objects.items():
            mine = have.get(rel)
            if mine is not None and mine.size == entry.size and int(mine.mtime) == int(entry.mtime):
                stats.files_skipped += 1
            else:
                needs.setdefault(rel, []).append(rank)
        if opts.delete and not single:
            extra = sorted(set(have) - set(objects))
            if extra:
                script = f"cd {shlex.quote(base)} && xargs -0 rm -f --"
                _run_with_stdin(cluster, rank, script, "\0".join(extra).encode(), "deleting extra files")
                stats.files_deleted += len(extra)

    def path_on(rank: int, rel: str) -> str:
        return posixpath.join(target_of[rank], rel) if rel else target_of[rank]

    # One mkdir per node for every directory the new files need.
    for rank in ranks:
        dirs = sorted({posixpath.dirname(path_on(rank, rel)) for rel, rs in needs.items() if rank in rs} - {""})
        if dirs:
            _run_with_stdin(cluster, rank, "xargs -0 mkdir -p --", "\0".join(dirs).encode(), "creating directories")

    pool = _SftpPool(cluster)

    def copy(item: tuple[str, list[int]]) -> None:
        rel, targets = item
        entry = objects[rel]
        key = s3.key(src, rel)
        files = []
        try:
            for rank in targets:
                final = path_on(rank, rel)
                tmp = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.sky-part")
                handle = pool.get(rank).open(tmp, "wb")
                handle.set_pipelined(True)
                files.append((rank, handle, tmp, final))
            try:
                body = s3.client.get_object(Bucket=src.bucket, Key=key)["Body"]
                for chunk in body.iter_chunks(1 << 20):
                    for _, handle, _, _ in files:
                        handle.write(chunk)
            except OSError:
                raise
            except Exception as exc:
                _raise_s3(exc, f"reading s3://{src.bucket}/{key}")
            for rank, handle, tmp, final in files:
                handle.close()
                sftp = pool.get(rank)
                # The object's LastModified becomes the file's mtime: the next sync compares them exactly.
                sftp.utime(tmp, (int(entry.mtime), int(entry.mtime)))
                sftp.posix_rename(tmp, final)
                stats.copied(entry.size)
        finally:
            for _, handle, _, _ in files:
                handle.close()

    try:
        run_parallel(opts.workers, sorted(needs.items()), copy)
    finally:
        pool.close()
    return stats


def cluster_to_s3(s3: _S3, cluster: Cluster, src: ClusterLocation, dst: S3Location, opts: _Options) -> SyncStats:
    """Files of one node (rank 0 unless ``cluster[R]:``) streamed from SFTP into S3."""
    rank = _ranks(cluster, src, [0])[0]
    base = remote_path(src.path)
    files, kind = remote_listing(cluster.runner.connections[rank], base)
    is_file = kind == "file"
    if kind == "missing":
        raise SkyConfigError(f"source {src}: no such file or directory on node {rank}")
    stats = SyncStats(method="s3-worker")
    if is_file:
        target = dst if dst.key and not dst.key.endswith("/") else S3Location(
            dst.bucket, dst.prefix + posixpath.basename(base)
        )
        existing, _ = s3.listing(target)
        remote = {"": existing[""]} if "" in existing else {}
    else:
        target = dst
        files = {rel: e for rel, e in files.items() if selected(rel, opts.include, opts.exclude)}
        remote = _filtered(s3.listing(dst)[0], opts.include, opts.exclude)
        remote.pop("", None)
    todo = []
    for rel, entry in files.items():
        obj = remote.get(rel)
        if obj is None or obj.size != entry.size or int(entry.mtime) > int(obj.mtime):
            todo.append((rel, entry))
        else:
            stats.files_skipped += 1
    pool = _SftpPool(cluster)

    def put(item: tuple[str, Entry]) -> None:
        rel, entry = item
        key = s3.key(target, rel)
        path = posixpath.join(base, rel) if rel else base
        with pool.get(rank).open(path, "rb") as fh:
            try:
                if entry.size < s3.threshold:
                    s3.client.put_object(Bucket=target.bucket, Key=key, Body=b"".join(iter_chunks(fh)))
                else:
                    fh.prefetch(entry.size)
                    s3.client.upload_fileobj(fh, target.bucket, key, Config=s3.transfer)
            except OSError:
                raise
            except Exception as exc:
                _raise_s3(exc, f"uploading {path} of node {rank} to s3://{target.bucket}/{key}")
        stats.copied(entry.size)

    try:
        run_parallel(opts.workers, todo, put)
    finally:
        pool.close()
    if opts.delete and not is_file:
        extra = sorted(set(remote) - set(files))
        s3.delete(target, extra)
        stats.files_deleted = len(extra)
    return stats


# -- the nodes pull and push themselves ----------------------------------------------------------


def short_lived_credentials(session: Any, endpoint_url: str | None, seconds: int) -> tuple[str, str, str]:
    """(key id, secret, token) that expire: the session's own when temporary, else fresh STS session ones."""
    credentials = session.get_credentials()
    if credentials is None:
        raise SkyConfigError("session: the AWS session has no credentials to hand to the nodes")
    frozen = credentials.get_frozen_credentials()
    if frozen.token:
        return frozen.access_key, frozen.secret_key, frozen.token
    try:
        reply = session.client("sts", endpoint_url=endpoint_url).get_session_token(DurationSeconds=seconds)
    except Exception as exc:
        raise SkyError(
            f"S3: could not get short-lived credentials for the nodes from STS ({type(exc).__name__}); "
            "use cluster_mode='worker', which hands no credentials to the nodes"
        ) from None
    creds = reply["Credentials"]
    return creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]


def _aws_cli_filters(opts: _Options) -> list[str]:
    args: list[str] = []
    if opts.include:
        args += ["--exclude", "*"]
        for pattern in opts.include:
            args += ["--include", pattern, "--include", f"*/{pattern}"]
    for pattern in opts.exclude:
        args += ["--exclude", pattern, "--exclude", f"*/{pattern}"]
    return args


def via_nodes(
    s3: _S3,
    cluster: Cluster,
    src: S3Location | ClusterLocation,
    dst: S3Location | ClusterLocation,
    opts: _Options,
    nodes: Sequence[int] | None,
    on_secret: Callable[[str], None] | None,
    aws_command: str,
    seconds: int,
    endpoint_url: str | None,
    node_endpoint_url: str | None,
) -> SyncStats:
    """Each node runs ``aws s3 sync`` (``cp`` for one object); credentials travel on the command's stdin."""
    key_id, secret, token = short_lived_credentials(s3.session, endpoint_url, seconds)
    if on_secret is not None:
        for value in (secret, token):
            on_secret(value)
    region = getattr(s3.session, "region_name", None) or "us-east-1"
    endpoint = ["--endpoint-url", node_endpoint_url] if node_endpoint_url else []
    if isinstance(src, S3Location):
        assert isinstance(dst, ClusterLocation)
        ranks = _ranks(cluster, dst, nodes)
        _, single = s3.listing(src)
        local = remote_path(dst.path)
        verb = "cp" if single else "sync"
        words = [aws_command, "s3", verb, f"s3://{src.bucket}/{src.key}", local, "--no-progress", *endpoint]
        if not single:
            words += _aws_cli_filters(opts) + (["--delete"] if opts.delete else [])
        parent = local if not single or local.endswith("/") else (posixpath.dirname(local) or ".")
        command = f"mkdir -p {shlex.quote(parent)} && {_quoted(words)}"
    else:
        assert isinstance(dst, S3Location)
        ranks = _ranks(cluster, src, [0])
        verb = "sync"
        local = remote_path(src.path)
        url = f"s3://{dst.bucket}/{dst.key}"
        words = [aws_command, "s3", "sync", local, url, "--no-progress", *endpoint, *_aws_cli_filters(opts)]
        if opts.delete:
            words.append("--delete")
        # One file is copied with cp: sync takes directories only.
        copy_one = [aws_command, "s3", "cp", local, url, "--no-progress", *endpoint]
        command = f"if [ -f {shlex.quote(local)} ]; then {_quoted(copy_one)}; else {_quoted(words)}; fi"
    # The secrets are read from stdin, so they are in no command line, process listing or log.
    script = (
        "IFS= read -r AWS_ACCESS_KEY_ID && IFS= read -r AWS_SECRET_ACCESS_KEY && IFS= read -r AWS_SESSION_TOKEN "
        f"&& export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_REGION={shlex.quote(region)} "
        f"&& {command}"
    )
    data = f"{key_id}\n{secret}\n{token}\n".encode()
    outputs = cluster.runner.map(
        lambda conn: _run_with_stdin(cluster, conn.node.rank, script, data, f"aws s3 {verb}"), ranks
    )
    stats = SyncStats(method="s3-nodes")
    for out in outputs:
        for line in out.splitlines():
            verb = line.split(":", 1)[0]
            if verb in ("download", "upload", "copy"):
                stats.files_copied += 1
            elif verb == "delete":
                stats.files_deleted += 1
    return stats


def _quoted(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)
