"""StorageSyncOperator: incremental copies between this machine, S3 and a cluster's nodes."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.hooks.sky import DEFAULT_CONN_ID
from airflow_provider_sky.operators._common import local_path
from airflow_provider_sky.utils.cluster_ref import parse_cluster_ref
from airflow_provider_sky.utils.targets import Location, check_pair, check_patterns, parse_location
from airflow_provider_sky.utils.templating import is_templated

if TYPE_CHECKING:
    from airflow.sdk import XComArg
    from airflow.sdk.definitions.context import Context

    from airflow_provider_sky.core.cluster import Cluster
    from airflow_provider_sky.core.storage import SyncStats

CLUSTER_MODES = ("worker", "nodes")


def _matches(relative: str, patterns: list[str]) -> bool:
    return any(fnmatch(relative, p) or fnmatch(os.path.basename(relative), p) for p in patterns)


def _files(root: Path) -> list[str]:
    if root.is_file():
        return [""]
    return sorted(
        os.path.relpath(os.path.join(current, name), root) for current, _dirs, names in os.walk(root) for name in names
    )


class StorageSyncOperator(BaseOperator):
    """Copy files between this machine, S3 and a cluster, sending only what changed.

    Locations are local paths (relative ones are taken from the DAG file's folder), ``file://`` URLs,
    ``s3://BUCKET/PREFIX``, ``cluster:PATH`` (every node) or ``cluster[RANK]:PATH`` (one node). Any
    pair but local to local and cluster to cluster: local, S3 and the cluster to and from each other,
    and S3 to S3. A directory's (or prefix's) contents are copied into the destination directory
    (prefix). Copying from ``cluster:PATH`` fetches every node's copy into ``DESTINATION/node-<rank>/``
    (a local directory or an S3 prefix). Other schemes (``gs://``, ...) are refused when the DAG file
    is parsed.

    Without S3 the nodes are reached over SSH (rsync, or SFTP where rsync is missing). With S3 the
    core's sync engine copies (parallel, multipart for large files; see ``docs/aws.md``), with the
    AWS connection's credentials; between S3 and a cluster ``cluster_mode`` picks the route:
    ``"worker"`` streams every object through this worker over SSH (no credentials on the nodes),
    ``"nodes"`` has each node run ``aws s3`` itself with short-lived credentials handed over on the
    command's standard input and masked in Airflow's logs (needs the AWS CLI on the nodes).

    :param source: where to copy from (templated).
    :param destination: where to copy to (templated).
    :param cluster: the launch task's output, a handle dict or a cluster name (templated); required when
        a side is ``cluster:``.
    :param delete: remove files in the destination that the source does not have.
    :param include: glob pattern(s); when given, only matching files (by relative path or name) are copied.
    :param exclude: glob pattern(s) of files not to copy (and not to delete).
    :param sky_conn_id: the ``sky`` connection.
    :param aws_conn_id: the Airflow AWS connection for ``s3://`` locations; default: the ``sky``
        connection's ``cloud_conn_id`` extra, else ``aws_default``.
    :param cluster_mode: between S3 and a cluster, ``"worker"`` (default: streamed through this worker
        over SSH, no credentials on the nodes) or ``"nodes"`` (the nodes pull and push themselves).
    :param node_aws_command: the AWS CLI as the nodes run it in ``"nodes"`` mode (a full path when
        ``aws`` is not on the PATH of a non-interactive SSH command).
    """

    template_fields: Sequence[str] = ("source", "destination", "cluster")
    ui_color = "#e8dcff"

    def __init__(
        self,
        *,
        source: str | XComArg,
        destination: str | XComArg,
        cluster: Any = None,
        delete: bool = False,
        include: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        sky_conn_id: str = DEFAULT_CONN_ID,
        aws_conn_id: str | None = None,
        cluster_mode: str = "worker",
        node_aws_command: str = "aws",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.destination = destination
        self.cluster = cluster
        self.delete = delete
        self.include = check_patterns(include, "include")
        self.exclude = check_patterns(exclude, "exclude")
        self.sky_conn_id = sky_conn_id
        if aws_conn_id is not None and (not isinstance(aws_conn_id, str) or not aws_conn_id.strip()):
            raise SkyConfigError(f"aws_conn_id: expected a connection id, got {aws_conn_id!r:.80}")
        self.aws_conn_id = aws_conn_id
        if cluster_mode not in CLUSTER_MODES:
            raise SkyConfigError(
                f"cluster_mode: invalid value {cluster_mode!r:.80}; accepted: 'worker' (through the Airflow "
                "worker over SSH) or 'nodes' (the nodes reach S3 themselves)"
            )
        self.cluster_mode = cluster_mode
        if not isinstance(node_aws_command, str) or not node_aws_command.strip():
            raise SkyConfigError(f"node_aws_command: expected a command, got {node_aws_command!r:.80}")
        self.node_aws_command = node_aws_command
        static = {
            "source": None if is_templated(source) else parse_location(source, "source"),
            "destination": None if is_templated(destination) else parse_location(destination, "destination"),
        }
        if static["source"] is not None and static["destination"] is not None:
            check_pair(static["source"], static["destination"])
        if cluster is None and any(loc is not None and loc.on_cluster for loc in static.values()):
            raise SkyConfigError("cluster: required when source or destination is cluster:PATH")
        if cluster is not None and not is_templated(cluster):
            parse_cluster_ref(cluster)

    def _connect(self) -> Cluster:
        from airflow_provider_sky.hooks.sky import SkyHook

        return SkyHook(self.sky_conn_id).resolve_cluster(self.cluster)

    def execute(self, context: Context) -> dict[str, Any]:
        source = parse_location(self.source, "source")
        destination = parse_location(self.destination, "destination")
        check_pair(source, destination)
        # A cluster is connected only when a side is on it: local <-> S3 and S3 -> S3 need none.
        cluster = self._connect() if source.on_cluster or destination.on_cluster else None
        try:
            if cluster is not None:
                for loc, param in ((source, "source"), (destination, "destination")):
                    if loc.on_cluster and loc.rank is not None and loc.rank >= len(cluster.nodes):
                        raise SkyConfigError(
                            f"{param}: node rank {loc.rank} does not exist; cluster {cluster.name!r} has "
                            f"{len(cluster.nodes)} node(s)"
                        )
            if source.on_s3 or destination.on_s3:
                stats = self._sync_s3(cluster, source, destination)
            elif destination.on_cluster:
                assert cluster is not None
                stats = self._upload(cluster, local_path(self, source.path), destination)
            else:
                assert cluster is not None
                stats = self._download(cluster, source, local_path(self, destination.path))
        finally:
            if cluster is not None:
                cluster.close()
        self.log.info(
            "Synced %s -> %s: %d file(s) sent (%d bytes), %d unchanged, %d deleted (%s)",
            source.describe(),
            destination.describe(),
            stats["files_sent"],
            stats["bytes_sent"],
            stats["files_skipped"],
            stats["files_deleted"],
            stats.get("method") or "ssh",
        )
        return stats

    def _sync_s3(self, cluster: Cluster | None, source: Location, destination: Location) -> dict[str, Any]:
        """One side is in S3: the core's engine copies, with the AWS connection's session."""
        from airflow_provider_sky.core.storage import sync
        from airflow_provider_sky.hooks.sky import SkyHook

        options = SkyHook(self.sky_conn_id, cloud_conn_id=self.aws_conn_id).s3_options()

        def run(src: Any, dst: Any) -> SyncStats:
            return sync(
                src,
                dst,
                cluster=cluster,
                include=self.include or None,
                exclude=self.exclude or None,
                delete=self.delete,
                cluster_mode=self.cluster_mode,
                node_aws_command=self.node_aws_command,
                **options,
            )

        if not (source.on_cluster and source.rank is None):
            return _s3_stats([run(self._engine_location(source), self._engine_location(destination))])
        # cluster:PATH -> S3 keeps every node's copy, under DESTINATION/node-<rank>/, as a download
        # to a local directory does (the engine alone would read node 0 only).
        from airflow_provider_sky.core.storage import ClusterLocation, S3Location

        assert cluster is not None and destination.bucket is not None
        ranks = range(len(cluster.nodes))
        # The trailing '/' makes a single file land inside node-<rank>/ under its own name.
        targets = [S3Location(destination.bucket, posixpath.join(destination.path, f"node-{r}/")) for r in ranks]
        # Each node has its own SSH connection and each run its own S3 session, so nodes go in parallel.
        with ThreadPoolExecutor(max_workers=min(16, len(ranks))) as pool:
            results = list(pool.map(lambda r: run(ClusterLocation(source.path, r), targets[r]), ranks))
        return _s3_stats(results)

    def _engine_location(self, loc: Location) -> Any:
        from airflow_provider_sky.core.storage import ClusterLocation, LocalLocation, S3Location

        if loc.bucket is not None:
            return S3Location(loc.bucket, loc.path)
        if loc.on_cluster:
            return ClusterLocation(loc.path, loc.rank)
        return LocalLocation(local_path(self, loc.path))

    def _upload(self, cluster: Cluster, local: Path, destination: Location) -> dict[str, Any]:
        if not local.exists():
            raise SkyConfigError(f"source: {str(local)!r} does not exist")
        nodes = None if destination.rank is None else [destination.rank]
        if not self.include:
            result = cluster.upload(str(local), destination.path, nodes=nodes, delete=self.delete, exclude=self.exclude)
            return _stats(result)
        # A staging tree of hard links holds only the included files; links share the originals'
        # size and mtime, so the transfer still skips unchanged files.
        with tempfile.TemporaryDirectory(prefix="sky-sync-") as staging:
            root = Path(staging) / "tree"
            root.mkdir()
            for rel in _files(local):
                if rel and _matches(rel, self.include) and not _matches(rel, self.exclude):
                    target = root / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(local / rel, target)
                    except OSError:
                        shutil.copy2(local / rel, target)
            result = cluster.upload(str(root), destination.path, nodes=nodes, delete=self.delete, exclude=self.exclude)
            return _stats(result)

    def _download(self, cluster: Cluster, source: Location, local: Path) -> dict[str, Any]:
        ranks = list(range(len(cluster.nodes))) if source.rank is None else [source.rank]
        total: dict[str, Any] = {"files_sent": 0, "bytes_sent": 0, "files_skipped": 0, "files_deleted": 0}
        methods: set[str] = set()

        def one(rank: int) -> dict[str, Any]:
            target = local / f"node-{rank}" if source.rank is None else local
            if self.include:
                return self._download_included(cluster, source.path, rank, target)
            return _stats(
                cluster.download(source.path, str(target), node=rank, delete=self.delete, exclude=self.exclude)
            )

        # Each node has its own connection, so nodes download in parallel.
        with ThreadPoolExecutor(max_workers=min(16, len(ranks))) as pool:
            for stats in pool.map(one, ranks):
                for key in total:
                    total[key] += stats[key]
                methods.add(stats["method"])
        total["method"] = "+".join(sorted(methods))
        return total

    def _download_included(self, cluster: Cluster, remote: str, rank: int, target: Path) -> dict[str, Any]:
        """Download into a per-source cache (kept, so later runs send only changes), then copy the included files."""
        from airflow_provider_sky.core.paths import sky_home

        key = hashlib.sha256(f"{cluster.name}\0{rank}\0{remote}".encode()).hexdigest()[:16]
        cache = sky_home() / "sync-cache" / key
        stats = _stats(cluster.download(remote, str(cache), node=rank, delete=True, exclude=self.exclude))
        copied = skipped = deleted = 0
        wanted = {rel for rel in _files(cache) if rel and _matches(rel, self.include)}
        for rel in sorted(wanted):
            src, dst = cache / rel, target / rel
            if (
                dst.exists()
                and dst.stat().st_size == src.stat().st_size
                and int(dst.stat().st_mtime) == int(src.stat().st_mtime)
            ):
                skipped += 1
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            copied += 1
        if self.delete and target.is_dir():
            for rel in _files(target):
                if rel and rel not in wanted and not _matches(rel, self.exclude):
                    (target / rel).unlink()
                    deleted += 1
        # bytes_sent stays the network figure; the file counts describe the destination.
        stats.update(files_sent=copied, files_skipped=skipped, files_deleted=deleted)
        return stats


def _stats(result: Any) -> dict[str, Any]:
    return {
        "files_sent": result.files_sent,
        "bytes_sent": result.bytes_sent,
        "files_skipped": result.files_skipped,
        "files_deleted": result.files_deleted,
        "method": result.method,
    }


def _s3_stats(results: list[SyncStats]) -> dict[str, Any]:
    """The engine's figures under the operator's XCom keys (summed over per-node runs)."""
    return {
        "files_sent": sum(r.files_copied for r in results),
        "bytes_sent": sum(r.bytes_copied for r in results),
        "files_skipped": sum(r.files_skipped for r in results),
        "files_deleted": sum(r.files_deleted for r in results),
        "method": results[0].method,
        "seconds": round(max(r.seconds for r in results), 3),
    }
