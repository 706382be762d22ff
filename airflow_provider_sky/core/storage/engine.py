"""The sync engine behind :func:`airflow_provider_sky.core.storage.sync` (see the package docstring)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import posixpath
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sky.core.errors import SkyConfigError, SkyError

if TYPE_CHECKING:
    from airflow_provider_sky.core.cluster import Cluster

log = logging.getLogger(__name__)

MiB = 1 << 20
DEFAULT_THRESHOLD = 8 * MiB
DEFAULT_CHUNKSIZE = 8 * MiB
DEFAULT_WORKERS = 16
_STREAM_CHUNK = 1 * MiB
_CLUSTER = re.compile(r"^cluster(?:\[(?P<rank>\d+)\])?:(?P<path>.+)$")
COMPARE_MODES = ("mtime", "checksum")
CLUSTER_MODES = ("worker", "nodes")


# -- locations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalLocation:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str  # without a leading '/'; may be '' (the whole bucket)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def prefix(self) -> str:
        """The key prefix of the objects "inside" this location, as a directory."""
        return self.key if not self.key or self.key.endswith("/") else self.key + "/"


@dataclass(frozen=True)
class ClusterLocation:
    path: str
    rank: int | None = None

    def __str__(self) -> str:
        return f"cluster{'' if self.rank is None else f'[{self.rank}]'}:{self.path}"


Location = LocalLocation | S3Location | ClusterLocation


def parse_location(text: object, field_name: str = "location") -> Location:
    """``s3://bucket/prefix``, ``cluster:PATH``, ``cluster[RANK]:PATH``, ``file://PATH`` or a local path."""
    if isinstance(text, os.PathLike):
        return LocalLocation(Path(text))
    if not isinstance(text, str) or not text.strip():
        raise SkyConfigError(
            f"{field_name}: expected a path or URL string, got {text!r:.80}; accepted: a local path, "
            "s3://bucket/prefix, cluster:PATH or cluster[RANK]:PATH"
        )
    text = text.strip()
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        if not re.match(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", bucket):
            raise SkyConfigError(f"{field_name}: invalid S3 bucket name {bucket!r} in {text!r}")
        return S3Location(bucket, key.lstrip("/"))
    match = _CLUSTER.match(text)
    if match:
        return ClusterLocation(match["path"], int(match["rank"]) if match["rank"] is not None else None)
    if "://" in text and not text.startswith("file://"):
        raise SkyConfigError(
            f"{field_name}: unsupported scheme in {text!r}; accepted: a local path, file://, s3://, cluster:PATH"
        )
    return LocalLocation(Path(text.removeprefix("file://")).expanduser())


# -- results -----------------------------------------------------------------------------------


@dataclass
class SyncStats:
    """What a sync did. ``method`` names the route (``s3``, ``s3-worker``, ``s3-nodes``, ``rsync``, ``sftp``)."""

    files_copied: int = 0
    bytes_copied: int = 0
    files_skipped: int = 0
    files_deleted: int = 0
    method: str = ""
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def copied(self, size: int) -> None:
        with self._lock:
            self.files_copied += 1
            self.bytes_copied += size


@dataclass(frozen=True)
class Entry:
    """A file or object: size, modification time (seconds) and, for objects, the ETag."""

    size: int
    mtime: float
    etag: str | None = None


def selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a relative path passes the globs (matched against the path and the file name)."""
    name = posixpath.basename(relative)

    def match(patterns: Sequence[str]) -> bool:
        return any(fnmatch(relative, p) or fnmatch(name, p) for p in patterns)

    return (not include or match(include)) and not match(exclude)


def _patterns(value: str | Sequence[str] | None, field_name: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) and p for p in items):
        raise SkyConfigError(f"{field_name}: expected glob pattern string(s), got {value!r:.100}")
    return items


# -- S3 plumbing -------------------------------------------------------------------------------


class _S3:
    """One thread-safe S3 client and the transfer settings of one sync."""

    def __init__(self, session: Any, endpoint_url: str | None, workers: int, threshold: int, chunksize: int) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        options: dict[str, Any] = {
            "max_pool_connections": max(10, workers * 2),
            "retries": {"mode": "standard", "total_max_attempts": 5},
        }
        if endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        self.session = session
        self.client = session.client("s3", endpoint_url=endpoint_url, config=Config(**options))
        self.threshold = threshold
        self.chunksize = chunksize
        self.transfer = TransferConfig(
            multipart_threshold=threshold,
            multipart_chunksize=chunksize,
            max_concurrency=min(10, workers),
            use_threads=True,
        )

    def listing(self, loc: S3Location) -> tuple[dict[str, Entry], bool]:
        """Objects below the location by relative key, and whether the location is one object itself."""
        entries: dict[str, Entry] = {}
        single = False
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if loc.key and key == loc.key and not loc.key.endswith("/"):
                        single = True
                        entries[""] = _entry(obj)
                    elif key.startswith(loc.prefix) and not key.endswith("/"):
                        entries[key[len(loc.prefix):]] = _entry(obj)
        except Exception as exc:
            _raise_s3(exc, f"listing {loc}")
        if single and len(entries) > 1:
            single = False  # a prefix with contents wins over an object of the same name
            entries.pop("")
        return entries, single

    def key(self, loc: S3Location, rel: str) -> str:
        return loc.key if not rel else loc.prefix + rel

    def delete(self, loc: S3Location, rels: list[str]) -> None:
        for start in range(0, len(rels), 1000):
            batch = [{"Key": self.key(loc, rel)} for rel in rels[start:start + 1000]]
            reply = self.client.delete_objects(Bucket=loc.bucket, Delete={"Objects": batch, "Quiet": True})
            if reply.get("Errors"):
                raise SkyError(f"S3: could not delete {len(reply['Errors'])} object(s) of {loc}: {reply['Errors'][:3]}")


def _entry(obj: dict[str, Any]) -> Entry:
    return Entry(int(obj["Size"]), obj["LastModified"].timestamp(), str(obj.get("ETag", "")).strip('"'))


def _raise_s3(exc: Exception, what: str) -> None:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    if code in ("NoSuchBucket", "404"):
        raise SkyConfigError(f"S3: {what}: the bucket does not exist") from None
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"):
        raise SkyError(f"S3: {what}: access refused ({code}); check the AWS connection's credentials") from None
    raise SkyError(f"S3: {what} failed: {type(exc).__name__}: {exc}") from None


def file_etag(path: Path, size: int, threshold: int, chunksize: int) -> str:
    """The ETag S3 gives a file uploaded with this engine: MD5, or MD5 of part MD5s plus ``-N`` when multipart."""
    with open(path, "rb") as fh:
        if size < threshold:
            return hashlib.md5(fh.read()).hexdigest()  # noqa: S324 - S3's ETag is MD5, not a security use
        parts = []
        while chunk := fh.read(chunksize):
            parts.append(hashlib.md5(chunk).digest())  # noqa: S324
    return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"  # noqa: S324


def local_tree(root: Path, include: Sequence[str], exclude: Sequence[str]) -> tuple[dict[str, Entry], bool]:
    """Files below ``root`` (or ``root`` itself when it is a file) passing the globs."""
    if root.is_file():
        st = root.stat()
        return {"": Entry(st.st_size, st.st_mtime)}, True
    entries: dict[str, Entry] = {}
    if not root.exists():
        return entries, False
    for current, _dirs, names in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        for name in names:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            if selected(rel, include, exclude):
                st = os.stat(os.path.join(current, name))
                entries[rel] = Entry(st.st_size, st.st_mtime)
    return entries, False


def _filtered(entries: dict[str, Entry], include: Sequence[str], exclude: Sequence[str]) -> dict[str, Entry]:
    return {rel: e for rel, e in entries.items() if rel == "" or selected(rel, include, exclude)}


# -- decisions ---------------------------------------------------------------------------------


def _needs_upload(src: Entry, dst: Entry | None, compare: str, etag: Callable[[], str]) -> bool:
    if dst is None or src.size != dst.size:
        return True
    if compare == "checksum":
        return etag() != dst.etag
    return int(src.mtime) > int(dst.mtime)


def _needs_download(src: Entry, dst: Entry | None, compare: str, etag: Callable[[], str]) -> bool:
    if dst is None or src.size != dst.size:
        return True
    if compare == "checksum":
        return etag() != src.etag
    return int(src.mtime) != int(dst.mtime)


def _needs_copy(src: Entry, dst: Entry | None, compare: str) -> bool:
    if dst is None or src.size != dst.size:
        return True
    if src.etag == dst.etag:
        return False
    return compare == "checksum" or dst.mtime < src.mtime


# -- the public entry point --------------------------------------------------------------------


def sync(
    source: str | os.PathLike[str] | Location,
    destination: str | os.PathLike[str] | Location,
    *,
    session: Any = None,
    session_factory: Callable[[], Any] | None = None,
    endpoint_url: str | None = None,
    cluster: Cluster | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    delete: bool = False,
    compare: str = "mtime",
    max_workers: int = DEFAULT_WORKERS,
    multipart_threshold: int = DEFAULT_THRESHOLD,
    multipart_chunksize: int = DEFAULT_CHUNKSIZE,
    cluster_mode: str = "worker",
    nodes: Sequence[int] | None = None,
    on_secret: Callable[[str], None] | None = None,
    node_aws_command: str = "aws",
    node_endpoint_url: str | None = None,
    credential_seconds: int = 3600,
) -> SyncStats:
    """Make ``destination`` hold what ``source`` holds, copying only what differs.

    :param source: a local path, ``s3://bucket/prefix``, ``cluster:PATH`` or ``cluster[RANK]:PATH``.
    :param destination: the same forms; at least one side is ``s3://`` or a cluster.
    :param session: a ``boto3.Session`` for S3 (the Airflow layer builds it from the AWS connection).
    :param session_factory: a zero-argument callable returning one, called only when S3 is used.
    :param endpoint_url: an S3-compatible endpoint (an emulator); default AWS.
    :param cluster: the :class:`~airflow_provider_sky.core.cluster.Cluster` for ``cluster:`` locations.
    :param include: glob(s): only matching files (relative path or name) are synced.
    :param exclude: glob(s) of files neither synced nor deleted.
    :param delete: remove destination files the source lacks (those passing the globs only).
    :param compare: ``"mtime"`` (size and modification time) or ``"checksum"`` (size and MD5/ETag).
    :param max_workers: files transferred in parallel.
    :param multipart_threshold: files at least this large go in parts (and are compared by multipart ETag).
    :param multipart_chunksize: the part size.
    :param cluster_mode: ``"worker"`` (stream through this process over SSH, the default) or ``"nodes"``
        (the nodes run ``aws s3 sync`` with short-lived credentials).
    :param nodes: destination node ranks (default: every node; ``cluster[R]:`` picks one).
    :param on_secret: called with each secret handed to nodes (``nodes`` mode), e.g. to mask it in logs.
    :param node_aws_command: the AWS CLI command on the nodes (``nodes`` mode).
    :param node_endpoint_url: the S3 endpoint as the nodes reach it (``nodes`` mode; default ``endpoint_url``).
    :param credential_seconds: lifetime of the credentials minted for the nodes.
    :returns: what was copied, skipped and deleted.
    """
    started = time.monotonic()
    src = source if isinstance(source, LocalLocation | S3Location | ClusterLocation) else parse_location(
        source, "source"
    )
    dst = destination if isinstance(destination, LocalLocation | S3Location | ClusterLocation) else parse_location(
        destination, "destination"
    )
    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    if compare not in COMPARE_MODES:
        raise SkyConfigError(f"compare: invalid value {compare!r}; accepted: {', '.join(COMPARE_MODES)}")
    if cluster_mode not in CLUSTER_MODES:
        raise SkyConfigError(f"cluster_mode: invalid value {cluster_mode!r}; accepted: {', '.join(CLUSTER_MODES)}")
    if not isinstance(max_workers, int) or max_workers < 1:
        raise SkyConfigError(f"max_workers: invalid value {max_workers!r}; accepted: a positive integer")
    if multipart_chunksize < 5 * MiB:
        raise SkyConfigError(f"multipart_chunksize: {multipart_chunksize} is below S3's 5 MiB minimum part size")
    kinds = (type(src).__name__, type(dst).__name__)
    if isinstance(src, LocalLocation) and isinstance(dst, LocalLocation):
        raise SkyConfigError("source and destination are both local paths; one side must be s3:// or cluster:")
    if isinstance(src, ClusterLocation) and isinstance(dst, ClusterLocation):
        raise SkyConfigError("source and destination are both on the cluster; run a command on it instead")
    if (isinstance(src, ClusterLocation) or isinstance(dst, ClusterLocation)) and cluster is None:
        raise SkyConfigError(f"cluster: required for {src} -> {dst}")

    def s3() -> _S3:
        chosen = session
        if chosen is None:
            if session_factory is None:
                raise SkyConfigError(
                    "session: S3 needs a boto3 session (session= or session_factory=); the Airflow layer builds "
                    "it from the AWS connection"
                )
            chosen = session_factory()
        return _S3(chosen, endpoint_url, max_workers, multipart_threshold, multipart_chunksize)

    opts = _Options(inc, exc, delete, compare, max_workers)
    if isinstance(src, LocalLocation) and isinstance(dst, S3Location):
        stats = _local_to_s3(s3(), src, dst, opts)
    elif isinstance(src, S3Location) and isinstance(dst, LocalLocation):
        stats = _s3_to_local(s3(), src, dst, opts)
    elif isinstance(src, S3Location) and isinstance(dst, S3Location):
        stats = _s3_to_s3(s3(), src, dst, opts)
    elif isinstance(src, LocalLocation) and isinstance(dst, ClusterLocation):
        assert cluster is not None
        stats = _local_cluster(cluster, src, dst, opts, upload=True, nodes=nodes)
    elif isinstance(src, ClusterLocation) and isinstance(dst, LocalLocation):
        assert cluster is not None
        stats = _local_cluster(cluster, dst, src, opts, upload=False, nodes=nodes)
    else:
        assert cluster is not None
        from airflow_provider_sky.core.storage import cluster_s3

        client = s3()
        if cluster_mode == "nodes":
            assert not isinstance(src, LocalLocation) and not isinstance(dst, LocalLocation)
            stats = cluster_s3.via_nodes(
                client, cluster, src, dst, opts, nodes, on_secret, node_aws_command, credential_seconds, endpoint_url,
                node_endpoint_url or endpoint_url,
            )
        elif isinstance(src, S3Location) and isinstance(dst, ClusterLocation):
            stats = cluster_s3.s3_to_cluster(client, cluster, src, dst, opts, nodes)
        elif isinstance(src, ClusterLocation) and isinstance(dst, S3Location):
            stats = cluster_s3.cluster_to_s3(client, cluster, src, dst, opts)
        else:  # pragma: no cover - every pair is handled above
            raise SkyConfigError(f"unsupported pair {kinds}")
    stats.seconds = time.monotonic() - started
    log.info(
        "sync %s -> %s: %d copied (%d bytes), %d unchanged, %d deleted in %.2fs (%s)",
        src, dst, stats.files_copied, stats.bytes_copied, stats.files_skipped, stats.files_deleted,
        stats.seconds, stats.method,
    )
    return stats


@dataclass(frozen=True)
class _Options:
    include: list[str]
    exclude: list[str]
    delete: bool
    compare: str
    workers: int


def run_parallel(workers: int, items: Sequence[Any], fn: Callable[[Any], None]) -> None:
    """Run ``fn`` over ``items`` in a thread pool; the first error is raised after all have ended."""
    if not items:
        return
    if len(items) == 1 or workers == 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
    for future in futures:
        future.result()


# -- local <-> S3, S3 <-> S3 -------------------------------------------------------------------


def _local_to_s3(s3: _S3, src: LocalLocation, dst: S3Location, opts: _Options) -> SyncStats:
    if not src.path.exists():
        raise SkyConfigError(f"source {str(src.path)!r} does not exist")
    files, single = local_tree(src.path, opts.include, opts.exclude)
    stats = SyncStats(method="s3")
    if single:
        target = dst if not dst.key.endswith("/") and dst.key else S3Location(dst.bucket, dst.prefix + src.path.name)
        existing, _ = s3.listing(target)
        remote = {"": existing[""]} if "" in existing else {}
    else:
        target = dst
        remote = _filtered(s3.listing(dst)[0], opts.include, opts.exclude)
        remote.pop("", None)
    todo = []
    for rel, entry in files.items():
        path = src.path if single else src.path / rel
        etag = functools.partial(file_etag, path, entry.size, s3.threshold, s3.chunksize)
        if _needs_upload(entry, remote.get(rel), opts.compare, etag):
            todo.append((rel, path, entry))
        else:
            stats.files_skipped += 1

    def put(item: tuple[str, Path, Entry]) -> None:
        rel, path, entry = item
        key = s3.key(target, rel)
        try:
            if entry.size < s3.threshold:
                with open(path, "rb") as fh:
                    s3.client.put_object(Bucket=target.bucket, Key=key, Body=fh)
            else:
                s3.client.upload_file(str(path), target.bucket, key, Config=s3.transfer)
        except Exception as exc:
            _raise_s3(exc, f"uploading {path} to s3://{target.bucket}/{key}")
        stats.copied(entry.size)

    run_parallel(opts.workers, todo, put)
    if opts.delete and not single:
        extra = sorted(set(remote) - set(files))
        s3.delete(target, extra)
        stats.files_deleted = len(extra)
    return stats


def _s3_to_local(s3: _S3, src: S3Location, dst: LocalLocation, opts: _Options) -> SyncStats:
    objects, single = s3.listing(src)
    stats = SyncStats(method="s3")
    if single:
        target = dst.path / posixpath.basename(src.key) if dst.path.is_dir() else dst.path
        objects = {"": objects[""]}
        local: dict[str, Entry] = {}
        if target.is_file():
            st = target.stat()
            local[""] = Entry(st.st_size, st.st_mtime)
    else:
        target = dst.path
        objects = _filtered(objects, opts.include, opts.exclude)
        local = local_tree(target, opts.include, opts.exclude)[0] if target.is_dir() else {}
    if not objects and not single and not opts.delete:
        log.warning("sync: %s holds no object (passing the globs)", src)
    todo = []
    for rel, entry in objects.items():
        path = target / rel if rel else target
        etag = functools.partial(file_etag, path, entry.size, s3.threshold, s3.chunksize)
        if _needs_download(entry, local.get(rel), opts.compare, etag):
            todo.append((rel, path, entry))
        else:
            stats.files_skipped += 1
    for parent in {path.parent for _, path, _ in todo}:
        parent.mkdir(parents=True, exist_ok=True)

    def get(item: tuple[str, Path, Entry]) -> None:
        rel, path, entry = item
        key = s3.key(src, rel)
        tmp = path.with_name(f".{path.name}.sky-part-{threading.get_ident()}")
        try:
            if entry.size < s3.threshold:
                body = s3.client.get_object(Bucket=src.bucket, Key=key)["Body"]
                with open(tmp, "wb") as fh:
                    for chunk in body.iter_chunks(_STREAM_CHUNK):
                        fh.write(chunk)
            else:
                s3.client.download_file(src.bucket, key, str(tmp), Config=s3.transfer)
            # The object's LastModified becomes the file's mtime: the next sync compares them exactly.
            os.utime(tmp, (entry.mtime, entry.mtime))
            os.replace(tmp, path)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise
            _raise_s3(exc, f"downloading s3://{src.bucket}/{key}")
        stats.copied(entry.size)

    run_parallel(opts.workers, todo, get)
    if opts.delete and not single:
        extra = sorted(set(local) - set(objects))
        for rel in extra:
            (target / rel).unlink()
        stats.files_deleted = len(extra)
    return stats


def _s3_to_s3(s3: _S3, src: S3Location, dst: S3Location, opts: _Options) -> SyncStats:
    objects, single = s3.listing(src)
    stats = SyncStats(method="s3")
    if single:
        target = dst if dst.key and not dst.key.endswith("/") else S3Location(
            dst.bucket, dst.prefix + posixpath.basename(src.key)
        )
        objects = {"": objects[""]}
        existing, _ = s3.listing(target)
        remote = {"": existing[""]} if "" in existing else {}
    else:
        target = dst
        objects = _filtered(objects, opts.include, opts.exclude)
        remote = _filtered(s3.listing(dst)[0], opts.include, opts.exclude)
        remote.pop("", None)
    todo = [(rel, e) for rel, e in objects.items() if _needs_copy(e, remote.get(rel), opts.compare)]
    stats.files_skipped = len(objects) - len(todo)

    def copy(item: tuple[str, Entry]) -> None:
        rel, entry = item
        source = {"Bucket": src.bucket, "Key": s3.key(src, rel)}
        key = s3.key(target, rel)
        try:
            if entry.size < s3.threshold:
                s3.client.copy_object(Bucket=target.bucket, Key=key, CopySource=source)
            else:
                s3.client.copy(source, target.bucket, key, Config=s3.transfer)
        except Exception as exc:
            _raise_s3(exc, f"copying s3://{source['Bucket']}/{source['Key']} to s3://{target.bucket}/{key}")
        stats.copied(entry.size)

    run_parallel(opts.workers, todo, copy)
    if opts.delete and not single:
        extra = sorted(set(remote) - set(objects))
        s3.delete(target, extra)
        stats.files_deleted = len(extra)
    return stats


# -- local <-> cluster ---------------------------------------------------------------------------


def _local_cluster(
    cluster: Cluster,
    local: LocalLocation,
    remote: ClusterLocation,
    opts: _Options,
    *,
    upload: bool,
    nodes: Sequence[int] | None,
) -> SyncStats:
    """Through :mod:`~airflow_provider_sky.core.transfer` (rsync, or SFTP where rsync is missing)."""
    if opts.include:
        raise SkyConfigError(
            "include: not supported between local paths and a cluster (rsync filters files by exclusion); "
            "use exclude, or sync through s3://"
        )
    if opts.compare == "checksum":
        log.info("sync: local <-> cluster copies compare size and mtime (rsync's rule), not checksums")
    if upload:
        ranks = [remote.rank] if remote.rank is not None else (list(nodes) if nodes is not None else None)
        result = cluster.upload(str(local.path), remote.path, nodes=ranks, delete=opts.delete, exclude=opts.exclude)
    else:
        result = cluster.download(
            remote.path, str(local.path), node=remote.rank or 0, delete=opts.delete, exclude=opts.exclude
        )
    return SyncStats(
        files_copied=result.files_sent,
        bytes_copied=result.bytes_sent,
        files_skipped=result.files_skipped,
        files_deleted=result.files_deleted,
        method=result.method,
    )


def iter_chunks(fh: Any, size: int = _STREAM_CHUNK) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk


def quote_all(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)
