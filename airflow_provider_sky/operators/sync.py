"""StorageSyncOperator: incremental copies between this machine and a cluster's nodes."""

from __future__ import annotations

import hashlib
import os
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


def _matches(relative: str, patterns: list[str]) -> bool:
    return any(fnmatch(relative, p) or fnmatch(os.path.basename(relative), p) for p in patterns)


def _files(root: Path) -> list[str]:
    if root.is_file():
        return [""]
    return sorted(
        os.path.relpath(os.path.join(current, name), root) for current, _dirs, names in os.walk(root) for name in names
    )


class StorageSyncOperator(BaseOperator):
    """Copy files between this machine and a cluster, sending only what changed.

    Locations are local paths (relative ones are taken from the DAG file's folder), ``file://`` URLs,
    ``cluster:PATH`` (every node) or ``cluster[RANK]:PATH`` (one node); exactly one side is on the
    cluster. A directory's contents are copied into the destination directory. Downloading from
    ``cluster:PATH`` fetches every node's copy into ``DESTINATION/node-<rank>/``. Bucket schemes
    (``s3://``, ``gs://``) come with later releases and are refused when the DAG file is parsed.

    :param source: where to copy from (templated).
    :param destination: where to copy to (templated).
    :param cluster: the launch task's output, a handle dict or a cluster name (templated).
    :param delete: remove files in the destination that the source does not have.
    :param include: glob pattern(s); when given, only matching files (by relative path or name) are copied.
    :param exclude: glob pattern(s) of files not to copy (and not to delete).
    :param sky_conn_id: the ``sky`` connection.
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
        from airflow_provider_sky.core.errors import ClusterNotFoundError
        from airflow_provider_sky.hooks.sky import SkyHook

        hook = SkyHook(self.sky_conn_id)
        ref = parse_cluster_ref(self.cluster)
        if ref.handle is not None:
            return hook.from_handle(ref.handle)
        found = hook.get_cluster(ref.name)
        if found is None:
            raise ClusterNotFoundError(f"cluster: no live cluster named {ref.name!r}")
        return found

    def execute(self, context: Context) -> dict[str, Any]:
        source = parse_location(self.source, "source")
        destination = parse_location(self.destination, "destination")
        check_pair(source, destination)
        cluster = self._connect()
        try:
            for loc, param in ((source, "source"), (destination, "destination")):
                if loc.on_cluster and loc.rank is not None and loc.rank >= len(cluster.nodes):
                    raise SkyConfigError(
                        f"{param}: node rank {loc.rank} does not exist; cluster {cluster.name!r} has "
                        f"{len(cluster.nodes)} node(s)"
                    )
            if destination.on_cluster:
                stats = self._upload(cluster, local_path(self, source.path), destination)
            else:
                stats = self._download(cluster, source, local_path(self, destination.path))
        finally:
            cluster.close()
        self.log.info(
            "Synced %s -> %s: %d file(s) sent (%d bytes), %d unchanged, %d deleted",
            source.describe(),
            destination.describe(),
            stats["files_sent"],
            stats["bytes_sent"],
            stats["files_skipped"],
            stats["files_deleted"],
        )
        return stats

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
