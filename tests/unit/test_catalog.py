"""The packaged catalog: the compact form equals the CSVs it was built from, loading is lazy,
and building/refreshing validates before replacing anything."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_sky.core import catalog
from airflow_provider_sky.core.catalog.build import CLOUDS, build_dir, read_source_dir
from airflow_provider_sky.core.catalog.compact import CompactCloud, Row, encode, rows_from_csv, unique_rows
from airflow_provider_sky.core.catalog.refresh import refresh
from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.optimizer import plan
from airflow_provider_sky.core.resources import Accelerator, Resources

DATA = catalog.PACKAGED_DIR
SHARED = Path("/work/shared/catalog")
README_ROWS = {"aws": 41695, "gcp": 29785, "azure": 5969, "lambda": 408}


def _csv_text(rel: str) -> str:
    return gzip.decompress((DATA / "csv" / f"{rel}.gz").read_bytes()).decode("utf-8-sig")


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKY_AIRFLOW_HOME", str(tmp_path / "home"))
    catalog.clear_cache()
    yield
    catalog.clear_cache()


@pytest.mark.parametrize("cloud", CLOUDS)
def test_compact_form_equals_the_csv(cloud: str) -> None:
    from_csv = [r.key() for r in unique_rows(rows_from_csv(cloud, _csv_text(f"{cloud}/vms.csv")))]
    compact = catalog.load(cloud)
    assert [r.key() for r in compact.rows()] == from_csv
    assert compact.n_rows == len(from_csv)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_manifest_matches_the_shipped_csvs(cloud: str) -> None:
    manifest = catalog.manifest(DATA)
    raw = gzip.decompress((DATA / "csv" / f"{cloud}/vms.csv.gz").read_bytes())
    assert manifest["clouds"][cloud]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert manifest["clouds"][cloud]["csv_rows"] == README_ROWS[cloud]
    assert manifest["snapshot"] == "2026-11"
    assert "@" in manifest["files"][f"{cloud}/vms.csv"]  # upstream path and commit kept


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared snapshot is not on this machine")
def test_shipped_csvs_are_the_snapshot_verbatim() -> None:
    for path in SHARED.rglob("*.csv"):
        rel = path.relative_to(SHARED).as_posix()
        assert gzip.decompress((DATA / "csv" / f"{rel}.gz").read_bytes()) == path.read_bytes(), rel
    assert (DATA / "README.md").read_text() == (SHARED / "README.md").read_text()


def test_quirks_are_kept_verbatim_in_the_compact_form() -> None:
    gcp = catalog.load("gcp")
    a4 = [r for r in gcp.rows() if r.instance_type == "a4-highgpu-8g"]
    assert a4 and all(r.price == 0.0 for r in a4)
    assert any(r.price == 700.0 for r in gcp.rows() if r.accelerator.startswith("tpu-v6e"))
    aws = catalog.load("aws")
    assert any(math.isnan(r.price) for r in aws.rows() if r.instance_type.startswith("mac"))
    assert {r.arch for r in aws.rows()} == {"x86_64", "arm64", "arm64_mac", "x86_64_mac"}  # i386 -> x86_64
    assert aws.counts_for("L4") == [0.125, 0.25, 0.5, 1.0, 4.0, 8.0]


def test_gcp_duplicate_tpu_rows_are_collapsed() -> None:
    rows = list(rows_from_csv("gcp", _csv_text("gcp/vms.csv")))
    assert len(rows) == README_ROWS["gcp"]
    assert catalog.load("gcp").n_rows == len(rows) - 154


def test_arch_is_inferred_where_the_cloud_has_no_column() -> None:
    archs = {r.instance_type: r.arch for r in catalog.load("azure").rows()}
    assert archs["Standard_D4ps_v5"] == "arm64"
    assert archs["Standard_D4s_v5"] == "x86_64"
    gcp = {r.instance_type: r.arch for r in catalog.load("gcp").rows()}
    assert gcp["t2a-standard-4"] == "arm64"
    assert gcp["n2-standard-4"] == "x86_64"
    lam = {r.instance_type: r.arch for r in catalog.load("lambda").rows()}
    assert lam["gpu_1x_gh200"] == "arm64"


def test_importing_the_core_does_not_load_the_catalog() -> None:
    code = (
        "import sys, airflow_provider_sky.core, airflow_provider_sky.core.catalog as c\n"
        "assert not c._loaded, c._loaded\n"
        "assert 'airflow_provider_sky.core.catalog.compact' not in sys.modules\n"
        "c.load('lambda'); assert len(c._loaded) == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_is_cached_and_rejects_unknown_clouds() -> None:
    assert catalog.load("aws") is catalog.load("aws")
    with pytest.raises(SkyConfigError, match="no catalog for cloud 'kubernetes'"):
        catalog.load("kubernetes")


def test_corrupt_compact_file_is_a_clear_error() -> None:
    data = (DATA / "lambda.skycat").read_bytes()
    with pytest.raises(SkyConfigError, match="bad magic"):
        CompactCloud(b"nope" + data)
    with pytest.raises(SkyConfigError, match="corrupt"):
        CompactCloud(data[:40])


def test_encode_round_trips_nan_and_fractions() -> None:
    rows = [
        Row("g6f.large", "L4", 0.125, 2.0, 8.0, "us-east-1", "use1-az1", "x86_64", 0.202, float("nan")),
        Row("m5.large", "", float("nan"), 2.0, 8.0, "us-east-1", "use1-az1", "x86_64", float("nan"), 0.03),
    ]
    decoded = CompactCloud(encode("aws", rows))
    assert sorted(r.key() for r in decoded.rows()) == sorted(r.key() for r in rows)
    assert list(decoded.groups_for("L4", 0.125)) == [1]
    assert list(decoded.plain_groups) == [0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("InstanceType,Price\nx,1\n", "lacks column"),
        ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,SpotPrice\n"
         "a,,,2,four,1.0,r,\n", "line 2: column MemoryGiB is 'four'"),
        ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,SpotPrice\n"
         "a,,,2,4,-1,r,\n", "expected >= 0"),
        ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,SpotPrice\n"
         "a,,,2,4,1,,\n", "empty Region"),
        ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,SpotPrice\n"
         "a,,,2,4,1\n", "6 fields, header has 8"),
    ],
)
def test_malformed_csv_is_rejected_with_its_line(text: str, message: str) -> None:
    with pytest.raises(SkyConfigError, match=message):
        list(rows_from_csv("lambda", text))


def _source_copy(dest: Path) -> Path:
    """The packaged CSVs, plain, laid out like SkyPilot's catalog repository."""
    for gz in (DATA / "csv").rglob("*.csv.gz"):
        target = dest / gz.relative_to(DATA / "csv").with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.decompress(gz.read_bytes()))
    return dest


def test_build_validates_everything_before_writing(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    files = read_source_dir(src)
    files["lambda/vms.csv"] = files["lambda/vms.csv"].replace(b"gpu_1x_a10,", b"gpu_1x_a10,,,,,,", 1)
    dest = tmp_path / "out"
    with pytest.raises(SkyConfigError, match=r"lambda/vms\.csv line"):
        build_dir(files, dest, {})
    assert not dest.exists()
    del files["lambda/vms.csv"]
    with pytest.raises(SkyConfigError, match=r"lacks lambda/vms\.csv"):
        build_dir(files, dest, {})


def test_too_few_rows_is_not_a_catalog(tmp_path: Path) -> None:
    files = read_source_dir(_source_copy(tmp_path / "src"))
    head = b"\n".join(files["aws/vms.csv"].split(b"\n")[:50])
    with pytest.raises(SkyConfigError, match=r"aws/vms\.csv has 49 rows"):
        build_dir({**files, "aws/vms.csv": head}, tmp_path / "out", {})


def test_refresh_from_a_directory_takes_precedence_and_keeps_missing_clouds(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    lam = (src / "lambda/vms.csv").read_text()
    old, new = "gpu_1x_a10,A10,1.0,30.0,200.0,1.29,", "gpu_1x_a10,A10,1.0,30.0,200.0,0.5,"
    (src / "lambda/vms.csv").write_text(lam.replace(old, new))
    (src / "azure/vms.csv").unlink()
    a10 = Resources(cloud="lambda", accelerators=(Accelerator("A10", 1),))
    assert plan(a10)[0].price == 1.29
    result = refresh(str(src))
    assert plan(a10)[0].price == 0.5  # nothing derived from the old catalog is reused
    assert result["kept"] == ["azure/vms.csv"]
    assert catalog.active_dir() == catalog.user_dir()
    info = catalog.info()
    assert info["origin"] == "refreshed" and info["rows"]["azure"] == README_ROWS["azure"]
    prices = {r.price for r in catalog.load("lambda").rows() if r.instance_type == "gpu_1x_a10"}
    assert 0.5 in prices
    manifest = json.loads((catalog.user_dir() / "manifest.json").read_text())
    assert "kept from the previous catalog" in manifest["files"]["azure/vms.csv"]


def test_failed_refresh_leaves_the_previous_catalog(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    refresh(str(src))
    before = (catalog.user_dir() / "manifest.json").read_bytes()
    (src / "gcp/vms.csv").write_text("InstanceType,vCPUs\nn1-standard-1,1\n")
    with pytest.raises(SkyConfigError, match=r"gcp/vms\.csv lacks column"):
        refresh(str(src))
    assert (catalog.user_dir() / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in catalog.user_dir().parent.iterdir()) == ["catalog"]


def test_refresh_rejects_a_source_without_a_catalog(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkyConfigError, match="no catalog at"):
        refresh(str(tmp_path / "empty"))
    with pytest.raises(SkyConfigError, match="neither a directory nor an http"):
        refresh(str(tmp_path / "missing"))
    assert catalog.active_dir() == DATA


def test_image_tags_and_accelerator_list() -> None:
    regions = catalog.image_regions("aws", "skypilot:custom-gpu-ubuntu-arm64")
    assert regions is not None and "us-east-1" in regions
    assert catalog.image_regions("aws", "skypilot:no-such-tag") == frozenset()
    assert catalog.image_regions("gcp", "skypilot:cpu-debian-10") is None  # GCP images are global
    assert catalog.image_regions("lambda", "skypilot:anything") is None
    assert "GCP" in catalog.accelerator_clouds()["A100"]


def test_packaged_compact_files_rebuild_byte_for_byte(tmp_path: Path) -> None:
    manifest = catalog.manifest(DATA)
    files = read_source_dir(DATA / "csv")
    build_dir(files, tmp_path / "out", {"files": manifest["files"]})
    for cloud in CLOUDS:
        assert (tmp_path / "out" / f"{cloud}.skycat").read_bytes() == (DATA / f"{cloud}.skycat").read_bytes()


def test_a_damaged_user_catalog_says_how_to_recover(tmp_path: Path) -> None:
    refresh(str(_source_copy(tmp_path / "src")))
    (catalog.user_dir() / "gcp.skycat").write_bytes(b"garbage")
    catalog.clear_cache()
    with pytest.raises(SkyConfigError, match="delete .* to use the packaged snapshot"):
        catalog.load("gcp")
