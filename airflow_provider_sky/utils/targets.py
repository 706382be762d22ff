"""Parsing the locations StorageSyncOperator copies between.

Accepted forms:

- a local path (absolute, relative or ``~``) or a ``file://`` URL;
- ``s3://BUCKET/PREFIX``: the objects under ``PREFIX`` (or the one object ``PREFIX``) in an S3 bucket;
- ``cluster:PATH``: ``PATH`` on every node of the operator's cluster;
- ``cluster[RANK]:PATH``: ``PATH`` on one node.

Other bucket schemes (``gs://``, ``az://``, ...) are refused with one line naming the accepted forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from airflow_provider_sky.core.errors import SkyConfigError

ACCEPTED = "a local path, file:///PATH, s3://BUCKET/PREFIX, cluster:PATH (every node) or cluster[RANK]:PATH (one node)"
_CLUSTER = re.compile(r"^cluster(?:\[(?P<rank>[^\]]*)\])?:(?P<path>.*)$", re.DOTALL)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Location:
    """A parsed location.

    On this machine: ``on_cluster`` False, ``bucket`` None, ``path`` the local path. On the cluster:
    ``on_cluster`` True, ``rank`` None for every node. In S3: ``bucket`` set and ``path`` the key prefix
    (without a leading ``/``, possibly empty).
    """

    on_cluster: bool
    path: str
    rank: int | None = None
    bucket: str | None = None

    @property
    def on_s3(self) -> bool:
        return self.bucket is not None

    def describe(self) -> str:
        if self.bucket is not None:
            return f"s3://{self.bucket}/{self.path}"
        if not self.on_cluster:
            return self.path
        return f"cluster:{self.path}" if self.rank is None else f"cluster[{self.rank}]:{self.path}"


def parse_location(value: object, param: str) -> Location:
    """Parse one location; a :class:`SkyConfigError` names ``param`` and the accepted forms."""
    if not isinstance(value, str | Path) or not str(value).strip():
        raise SkyConfigError(f"{param}: expected {ACCEPTED}, got {value!r:.80}")
    text = str(value).strip()
    match = _CLUSTER.match(text)
    if match:
        rank_text, path = match["rank"], match["path"]
        if not path:
            raise SkyConfigError(f"{param}: {text!r} has no path after ':'; accepted: {ACCEPTED}")
        rank = None
        if rank_text is not None:
            if not rank_text.isdigit():
                raise SkyConfigError(f"{param}: node rank {rank_text!r} in {text!r} is not a non-negative integer")
            rank = int(rank_text)
        return Location(True, path, rank)
    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme["scheme"].lower()
        if name == "s3":
            return _parse_s3(text[scheme.end() :], text, param)
        if name != "file":
            raise SkyConfigError(f"{param}: scheme {name!r} ({text!r:.80}) is not supported; accepted: {ACCEPTED}")
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise SkyConfigError(f"{param}: file URL {text!r} names host {parsed.netloc!r}; use file:///PATH")
        if not parsed.path:
            raise SkyConfigError(f"{param}: file URL {text!r} has no path; accepted: {ACCEPTED}")
        return Location(False, unquote(parsed.path))
    return Location(False, text)


def _parse_s3(rest: str, text: str, param: str) -> Location:
    """``rest`` is what follows ``s3://``: ``BUCKET[/PREFIX]``."""
    from airflow_provider_sky.core.storage.engine import parse_location as engine_location

    bucket, _, key = rest.partition("/")
    if not bucket:
        raise SkyConfigError(f"{param}: {text!r:.80} names no bucket; expected s3://BUCKET/PREFIX")
    # The engine's parser holds the bucket-name rules (it raises on a bad name); reusing it keeps the
    # operator from accepting at parse time what the engine would refuse at run time.
    engine_location(f"s3://{rest}", param)
    return Location(False, key.lstrip("/"), None, bucket)


def check_pair(source: Location, destination: Location) -> None:
    """The pairs the operator copies between: one side on the cluster and the other local or in S3, or
    one side in S3 and the other local or in S3. Never cluster to cluster, nor local to local."""
    if source.on_cluster and destination.on_cluster:
        raise SkyConfigError(
            "destination: both source and destination are on the cluster; one side must be local or s3:// "
            f"(accepted: {ACCEPTED})"
        )
    if not (source.on_cluster or destination.on_cluster or source.on_s3 or destination.on_s3):
        raise SkyConfigError(
            "destination: neither source nor destination is on the cluster or in S3; use cluster:PATH, "
            "cluster[RANK]:PATH or s3://BUCKET/PREFIX on one side"
        )


def check_patterns(value: object, param: str) -> list[str]:
    """``include``/``exclude``: None, one glob string, or a list of glob strings."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p for p in value):
        raise SkyConfigError(f"{param}: expected a glob pattern or a list of glob patterns, got {value!r:.80}")
    return list(value)
