"""Build a catalog directory (compact files, compressed CSVs, manifest) from SkyPilot CSVs.

Used twice: once by the maintainers to produce the packaged snapshot
(``python -m airflow_provider_sky.core.catalog.build /work/shared/catalog``),
and by ``sky-airflow catalog refresh`` for the user's copy. Everything is
parsed and validated before the first byte is written, so a bad source never
leaves a half-built catalog behind.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_provider_sky.core.catalog.compact import encode, rows_from_csv
from airflow_provider_sky.core.errors import SkyConfigError

CLOUDS = ("aws", "gcp", "azure", "lambda")
#: Files a source must provide, relative to its root (SkyPilot's catalog layout).
REQUIRED_FILES = tuple(f"{cloud}/vms.csv" for cloud in CLOUDS)
#: Files copied when present: images (for ``image_id`` tags) and the accelerator -> clouds list.
OPTIONAL_FILES = ("aws/images.csv", "gcp/images.csv", "kubernetes/images.csv", "common/accelerators.csv")
MANIFEST = "manifest.json"
#: Fewer rows than this for a cloud means a truncated or wrong file, not a real catalog.
MIN_ROWS = {"aws": 1000, "gcp": 1000, "azure": 100, "lambda": 10}
_IMAGE_COLUMNS = ("Tag", "Region", "ImageId")


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkyConfigError(f"{path} is not UTF-8 text: {exc}") from None


def _check_images(path: str, text: str) -> None:
    header = text.splitlines()[0].split(",") if text.strip() else []
    missing = [c for c in _IMAGE_COLUMNS if c not in header]
    if missing:
        raise SkyConfigError(f"{path} lacks column(s) {', '.join(missing)}")


def build_dir(files: Mapping[str, bytes], dest: Path, provenance: dict[str, Any]) -> dict[str, Any]:
    """Validate ``files`` and write a complete catalog directory at ``dest``.

    :param files: relative path (``aws/vms.csv``...) to content; every
        :data:`REQUIRED_FILES` entry must be present.
    :param dest: directory to create; must not exist yet (callers build into a
        fresh temporary directory and rename it into place).
    :param provenance: ``source``, ``snapshot`` and optional per-file ``files``
        notes kept in the manifest.
    :returns: the manifest written.
    :raises SkyConfigError: a missing file, a missing column, a malformed value,
        or suspiciously few rows; nothing is written then.
    """
    missing = [p for p in REQUIRED_FILES if p not in files]
    if missing:
        raise SkyConfigError(f"catalog source lacks {', '.join(missing)}")
    compact: dict[str, bytes] = {}
    clouds: dict[str, Any] = {}
    file_notes = provenance.get("files", {})
    for cloud in CLOUDS:
        path = f"{cloud}/vms.csv"
        rows = list(rows_from_csv(cloud, _decode(path, files[path])))
        if len(rows) < MIN_ROWS[cloud]:
            raise SkyConfigError(f"{path} has {len(rows)} rows, fewer than the {MIN_ROWS[cloud]} expected")
        data = encode(cloud, rows, {"file": path, "note": file_notes.get(path, "")})
        compact[cloud] = data
        clouds[cloud] = {
            "file": f"{cloud}.skycat",
            "csv_rows": len(rows),
            "sha256": hashlib.sha256(files[path]).hexdigest(),
        }
    for path in OPTIONAL_FILES:
        if path in files and path.endswith("images.csv"):
            _check_images(path, _decode(path, files[path]))
    manifest = {
        "format": 1,
        "source": provenance.get("source", ""),
        "snapshot": provenance.get("snapshot", ""),
        "built_at": provenance.get("built_at", ""),
        "clouds": clouds,
        "files": {p: file_notes.get(p, "") for p in (*REQUIRED_FILES, *OPTIONAL_FILES) if p in files},
    }
    dest.mkdir(parents=True)
    for cloud, data in compact.items():
        (dest / f"{cloud}.skycat").write_bytes(data)
    for path in (*REQUIRED_FILES, *OPTIONAL_FILES):
        if path in files:
            target = dest / "csv" / f"{path}.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            # mtime=0 keeps rebuilt package data byte-identical.
            target.write_bytes(gzip.compress(files[path], compresslevel=9, mtime=0))
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def read_source_dir(root: Path) -> dict[str, bytes]:
    """Read the catalog files under a directory.

    :param root: a directory in SkyPilot's layout (``aws/vms.csv``...); ``.gz`` copies are accepted.
    :returns: relative path to (uncompressed) content, for the files present.
    """
    files: dict[str, bytes] = {}
    for rel in (*REQUIRED_FILES, *OPTIONAL_FILES):
        plain, packed = root / rel, root / f"{rel}.gz"
        if plain.is_file():
            files[rel] = plain.read_bytes()
        elif packed.is_file():
            files[rel] = gzip.decompress(packed.read_bytes())
    return files


def _parse_readme_table(readme: str) -> dict[str, str]:
    """``path -> "source @ commit"`` from the snapshot README's provenance table."""
    notes: dict[str, str] = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].endswith(".csv") and "@" in cells[1]:
            notes[cells[0]] = cells[1]
    return notes


def main(argv: list[str] | None = None) -> int:
    """Rebuild the packaged snapshot from a directory such as /work/shared/catalog."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("--snapshot", default="2026-11")
    parser.add_argument("--dest", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args(argv)
    readme = (args.source / "README.md").read_text()
    files = read_source_dir(args.source)
    tmp = args.dest.with_name(args.dest.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    build_dir(files, tmp, {
        "source": "https://github.com/skypilot-org/skypilot-catalog (catalogs/v8; Azure catalogs/v6)",
        "snapshot": args.snapshot,
        "files": _parse_readme_table(readme),
    })
    (tmp / "README.md").write_text(readme)
    shutil.rmtree(args.dest, ignore_errors=True)
    tmp.rename(args.dest)
    print(f"wrote {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
