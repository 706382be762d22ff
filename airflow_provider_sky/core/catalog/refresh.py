"""Replace the user's catalog with a newer one (``sky-airflow catalog refresh``).

The source is a directory or an ``http(s)://`` base URL laid out like SkyPilot's
catalog repository (``<base>/aws/vms.csv``, ``<base>/gcp/vms.csv``..., e.g.
``https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v8``).
A cloud whose ``vms.csv`` the source lacks (upstream v8 has no Azure file) keeps
the file of the catalog in use. Everything is downloaded, parsed and validated
into a temporary directory next to the target first; only then is the old
catalog swapped out, so a failed refresh leaves the previous one untouched.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path
from typing import Any

from airflow_provider_sky.core import catalog
from airflow_provider_sky.core.catalog.build import OPTIONAL_FILES, REQUIRED_FILES, build_dir, read_source_dir
from airflow_provider_sky.core.errors import SkyConfigError, SkyError

#: No catalog file upstream comes near this; a bigger answer is not a catalog.
MAX_FILE_BYTES = 256 * 1024 * 1024


class CatalogFetchError(SkyError):
    """The catalog source could not be read (network error, HTTP error other than 404)."""


def _fetch_http(base: str, timeout: float) -> dict[str, bytes]:
    import urllib.error
    import urllib.request

    files: dict[str, bytes] = {}
    for rel in (*REQUIRED_FILES, *OPTIONAL_FILES):
        url = f"{base.rstrip('/')}/{rel}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) checked by caller
                data = resp.read(MAX_FILE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            raise CatalogFetchError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CatalogFetchError(f"GET {url}: {reason}") from None
        if len(data) > MAX_FILE_BYTES:
            raise SkyConfigError(f"{url} is larger than {MAX_FILE_BYTES} bytes; not a catalog file")
        files[rel] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return files


def _current_file(rel: str) -> bytes | None:
    path = catalog.active_dir() / "csv" / f"{rel}.gz"
    return gzip.decompress(path.read_bytes()) if path.is_file() else None


def refresh(source: str, timeout: float = 60.0) -> dict[str, Any]:
    """Build a catalog from ``source`` and make it the user's catalog.

    :param source: a directory, or an ``http://``/``https://`` base URL, holding
        ``<cloud>/vms.csv`` files (and optionally images and
        ``common/accelerators.csv``), plain or gzip-compressed.
    :param timeout: seconds allowed per HTTP request.
    :returns: the new catalog's manifest, with ``kept`` listing the files taken
        from the previous catalog because the source lacked them.
    :raises SkyConfigError: the source has no catalog file at all, or a file fails
        validation (nothing is replaced then).
    :raises CatalogFetchError: the source could not be read.
    """
    if source.startswith(("http://", "https://")):
        files = _fetch_http(source, timeout)
    else:
        root = Path(source).expanduser()
        if not root.is_dir():
            raise SkyConfigError(f"catalog source {source!r} is neither a directory nor an http(s) URL")
        files = read_source_dir(root)
    if not any(rel in files for rel in REQUIRED_FILES):
        raise SkyConfigError(
            f"no catalog at {source}: expected {', '.join(REQUIRED_FILES)} under it"
        )
    kept: list[str] = []
    notes: dict[str, str] = {rel: f"from {source}" for rel in files}
    previous = catalog.manifest().get("snapshot", "")
    for rel in (*REQUIRED_FILES, *OPTIONAL_FILES):
        if rel not in files:
            old = _current_file(rel)
            if old is not None:
                files[rel] = old
                kept.append(rel)
                notes[rel] = f"kept from the previous catalog (snapshot {previous})"
    now = dt.datetime.now(dt.UTC)
    target = catalog.user_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.new-{os.getpid()}")
    retired = target.with_name(f"{target.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = build_dir(files, staging, {
            "source": source,
            "snapshot": now.date().isoformat(),
            "built_at": now.isoformat(timespec="seconds"),
            "files": notes,
        })
        (staging / "README.md").write_text(
            f"Catalog refreshed from {source} on {now.isoformat(timespec='seconds')}.\n"
            "Files and their origin are listed in manifest.json; the packaged snapshot's README\n"
            "(airflow_provider_sky/core/catalog/data/README.md) describes columns and quirks.\n"
        )
        if target.exists():
            target.rename(retired)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not target.exists():
            retired.rename(target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    catalog.clear_cache()
    return {**manifest, "kept": kept}
