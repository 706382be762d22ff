"""The instance catalog: what each cloud offers, where, and at what hourly price.

Data comes from SkyPilot's public catalogs (see ``data/README.md`` for
provenance). The packaged snapshot lives in ``data/``; ``sky-airflow catalog
refresh`` writes a newer one under ``sky_home()/catalog/``, which then takes
precedence. Nothing is read until a cloud is first asked for, and each cloud is
read at most once per process (:func:`load`), so importing this package is free.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.paths import ENV_HOME, sky_home

if TYPE_CHECKING:
    from airflow_provider_sky.core.catalog.compact import CompactCloud

__all__ = [
    "CLOUDS",
    "PACKAGED_DIR",
    "accelerator_clouds",
    "active_dir",
    "clear_cache",
    "image_regions",
    "info",
    "load",
    "manifest",
    "user_dir",
]

#: Clouds the catalog covers, in the order used to break price ties.
CLOUDS = ("aws", "gcp", "azure", "lambda")
PACKAGED_DIR = Path(__file__).with_name("data")

_loaded: dict[tuple[str, str], CompactCloud] = {}
_extras: dict[tuple[str, str], Any] = {}


def user_dir() -> Path:
    """Where ``catalog refresh`` keeps the user's catalog: ``sky_home()/catalog``."""
    return sky_home() / "catalog"


_active: dict[str | None, Path] = {}


def active_dir() -> Path:
    """The catalog in use: the user's refreshed copy when it has a manifest, else the packaged one.

    Decided once per value of ``$SKY_AIRFLOW_HOME`` (a refresh in this process
    calls :func:`clear_cache`), so the optimizer's hot path does not stat files.
    """
    env = os.environ.get(ENV_HOME)
    found = _active.get(env)
    if found is None:
        mine = user_dir()
        found = _active[env] = mine if (mine / "manifest.json").is_file() else PACKAGED_DIR
    return found


def clear_cache() -> None:
    """Forget loaded clouds, so the next :func:`load` reads the (possibly refreshed) files again."""
    _loaded.clear()
    _extras.clear()
    _active.clear()


def load(cloud: str) -> CompactCloud:
    """One cloud's catalog, read on first use and then kept for the process.

    :param cloud: one of :data:`CLOUDS`.
    :raises SkyConfigError: an unknown cloud, or a missing or corrupt catalog file.
    """
    root = active_dir()
    key = (str(root), cloud)
    found = _loaded.get(key)
    if found is not None:
        return found
    if cloud not in CLOUDS:
        raise SkyConfigError(f"no catalog for cloud {cloud!r}; the catalog covers {', '.join(CLOUDS)}")
    from airflow_provider_sky.core.catalog.compact import CompactCloud

    path = root / f"{cloud}.skycat"
    hint = "" if root == PACKAGED_DIR else f" (refresh again, or delete {root} to use the packaged snapshot)"
    try:
        found = CompactCloud(path.read_bytes())
    except OSError as exc:
        raise SkyConfigError(f"cannot read catalog file {path}: {exc.strerror}{hint}") from None
    except SkyConfigError as exc:
        raise SkyConfigError(f"{path}: {exc}{hint}") from None
    _loaded[key] = found
    return found


def manifest(root: Path | None = None) -> dict[str, Any]:
    """The manifest (source, snapshot date, per-cloud row counts) of a catalog directory.

    :param root: the catalog directory; default :func:`active_dir`.
    :raises SkyConfigError: the manifest is missing or not JSON.
    """
    path = (root or active_dir()) / "manifest.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SkyConfigError(f"cannot read catalog manifest {path}: {exc}") from None
    return loaded


def info() -> dict[str, Any]:
    """What ``sky-airflow catalog info`` prints: where the catalog is, its source and snapshot, rows per cloud."""
    root = active_dir()
    man = manifest(root)
    return {
        "path": str(root),
        "origin": "packaged" if root == PACKAGED_DIR else "refreshed",
        "source": man.get("source", ""),
        "snapshot": man.get("snapshot", ""),
        "built_at": man.get("built_at", ""),
        "rows": {cloud: man["clouds"][cloud]["csv_rows"] for cloud in CLOUDS if cloud in man["clouds"]},
        "files": man.get("files", {}),
    }


def _read_csv(rel: str) -> list[dict[str, str]]:
    path = active_dir() / "csv" / f"{rel}.gz"
    if not path.is_file():
        return []
    text = gzip.decompress(path.read_bytes()).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def image_regions(cloud: str, tag: str) -> frozenset[str] | None:
    """Regions where a ``skypilot:`` image tag exists on ``cloud``.

    :param cloud: a cloud with an images list in the catalog (aws, gcp, kubernetes).
    :param tag: the image tag, e.g. ``skypilot:custom-gpu-ubuntu-2204``.
    :returns: the regions; an empty set when the cloud's images list lacks the
        tag; ``None`` when the tag is global there (GCP lists no region) or the
        cloud has no images list, i.e. the tag does not limit regions.
    """
    key = (f"images:{active_dir()}", cloud)
    table = _extras.get(key)
    if table is None:
        table = {}
        for row in _read_csv(f"{cloud}/images.csv"):
            table.setdefault(row.get("Tag", ""), set()).add(row.get("Region", ""))
        _extras[key] = table
    if not table:
        return None
    regions = table.get(tag)
    if regions is None:
        return frozenset()
    if "" in regions:
        return None
    return frozenset(regions)


def accelerator_clouds() -> dict[str, list[str]]:
    """SkyPilot's list of accelerator names and every cloud (including ones this provider lacks) offering each."""
    key = (f"accelerators:{active_dir()}", "")
    table = _extras.get(key)
    if table is None:
        table = {}
        for row in _read_csv("common/accelerators.csv"):
            clouds = row.get("Clouds", "").strip("[]").replace("'", "").split(",")
            table[row.get("AcceleratorName", "")] = [c.strip() for c in clouds if c.strip()]
        _extras[key] = table
    return dict(table)
