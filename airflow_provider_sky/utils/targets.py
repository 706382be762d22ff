"""Parsing the locations StorageSyncOperator copies between.

Accepted forms:

- a local path (absolute, relative or ``~``) or a ``file://`` URL;
- ``cluster:PATH``: ``PATH`` on every node of the operator's cluster;
- ``cluster[RANK]:PATH``: ``PATH`` on one node.

Bucket schemes (``s3://``, ``gs://``, ...) come with their own issues and are refused with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from airflow_provider_sky.core.errors import SkyConfigError

ACCEPTED = "a local path, file:///PATH, cluster:PATH (every node) or cluster[RANK]:PATH (one node)"
_CLUSTER = re.compile(r"^cluster(?:\[(?P<rank>[^\]]*)\])?:(?P<path>.*)$", re.DOTALL)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Location:
    """A parsed location: on this machine (``rank`` unused) or on the cluster (``rank`` None: every node)."""

    on_cluster: bool
    path: str
    rank: int | None = None

    def describe(self) -> str:
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
        if name != "file":
            raise SkyConfigError(f"{param}: scheme {name!r} ({text!r:.80}) is not supported yet; accepted: {ACCEPTED}")
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise SkyConfigError(f"{param}: file URL {text!r} names host {parsed.netloc!r}; use file:///PATH")
        if not parsed.path:
            raise SkyConfigError(f"{param}: file URL {text!r} has no path; accepted: {ACCEPTED}")
        return Location(False, unquote(parsed.path))
    return Location(False, text)


def check_pair(source: Location, destination: Location) -> None:
    """Exactly one side is on the cluster: the operator uploads or downloads, never both or neither."""
    if source.on_cluster and destination.on_cluster:
        raise SkyConfigError(
            "destination: both source and destination are on the cluster; one side must be local "
            f"(accepted: {ACCEPTED})"
        )
    if not source.on_cluster and not destination.on_cluster:
        raise SkyConfigError(
            "destination: neither source nor destination is on the cluster; use cluster:PATH or "
            "cluster[RANK]:PATH on one side"
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
