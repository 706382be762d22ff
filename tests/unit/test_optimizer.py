"""The optimizer over the real snapshot: the first candidate is what a person reading the CSV would pick.

An independent reference (:func:`reference_best`) reads the packaged CSVs with the
csv module and applies the documented rules by brute force; table-driven cases
then pin literal rows of the CSV.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import re
from collections import defaultdict

import pytest

from airflow_provider_sky.core import catalog
from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.optimizer import Candidate, plan
from airflow_provider_sky.core.resources import Accelerator, Amount, Resources

A100_8 = (Accelerator("A100", 8),)


@functools.cache
def csv_rows(cloud: str) -> list[dict[str, str]]:
    raw = gzip.decompress((catalog.PACKAGED_DIR / "csv" / cloud / "vms.csv.gz").read_bytes())
    return list(csv.DictReader(io.StringIO(raw.decode(), newline="")))


def price(text: str) -> float | None:
    """The documented reading of a CSV price: empty and 0.0 are unknown."""
    return float(text) if text and float(text) != 0.0 else None


GCP_HOSTS = {
    ("A100", 1): {"a2-highgpu-1g"}, ("A100", 8): {"a2-highgpu-8g"}, ("A100-80GB", 8): {"a2-ultragpu-8g"},
    ("H100", 8): {"a3-highgpu-8g"}, ("L4", 1): {"g2-standard-4", "g2-standard-8", "g2-standard-12",
                                                "g2-standard-16", "g2-standard-32"},
}


def reference_best(cloud: str, acc: str, count: float, spot: bool) -> tuple[float, str, str]:
    """(price, instance type, region) of the cheapest offer, by brute force over the CSV."""
    col = "SpotPrice" if spot else "Price"
    best: list[tuple[float, str, str]] = []
    rows = csv_rows(cloud)
    if cloud != "gcp":
        for r in rows:
            if r["AcceleratorName"].lower() == acc.lower() and float(r["AcceleratorCount"] or 0) == count:
                p = price(r[col])
                if p is not None:
                    best.append((p, r["InstanceType"], r["Region"]))
        return min(best)
    hosts: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in rows:
        if r["InstanceType"] in GCP_HOSTS[(acc, count)]:
            p = price(r[col])
            if p is not None:
                hosts[r["AvailabilityZone"]].append((p, r["InstanceType"]))
    for r in rows:
        if not r["InstanceType"] and r["AcceleratorName"] == acc and float(r["AcceleratorCount"]) == count:
            p = price(r[col])
            if p is not None and hosts[r["AvailabilityZone"]]:
                host_price, host = min(hosts[r["AvailabilityZone"]])
                best.append((round(p + host_price, 8), host, r["Region"]))
    return min(best)


REFERENCE_CASES = [
    (cloud, acc, count, spot)
    for cloud, acc, count in [
        ("aws", "A100", 8), ("aws", "H100", 8), ("aws", "T4", 1), ("aws", "L4", 0.125), ("azure", "A100", 8),
        ("azure", "T4", 1), ("lambda", "H100", 8), ("gcp", "A100", 1), ("gcp", "A100", 8), ("gcp", "H100", 8),
        ("gcp", "A100-80GB", 8), ("gcp", "L4", 1),
    ]
    for spot in (False, True)
    if not (cloud == "lambda" and spot)  # Lambda has no spot market: see test_clouds_without_spot...
]


@pytest.mark.parametrize(("cloud", "acc", "count", "spot"), REFERENCE_CASES)
def test_first_candidate_is_the_cheapest_row_of_the_csv(cloud: str, acc: str, count: float, spot: bool) -> None:
    first = plan(Resources(cloud=cloud, accelerators=(Accelerator(acc.lower(), count),), use_spot=spot))[0]
    expected_price, expected_type, _ = reference_best(cloud, acc, count, spot)
    assert first.price == pytest.approx(expected_price, abs=1e-9)
    assert first.instance_type == expected_type
    assert (first.spot_price if spot else first.on_demand_price) == first.price


# Literal rows read off the CSVs by hand.
CASES = [
    # README's example: a2-highgpu-1g 0.73948 + A100 2.93391 in us-central1
    (Resources(accelerators=(Accelerator("A100", 1),), cloud="gcp", region="us-central1"),
     ("gcp", "us-central1", "a2-highgpu-1g", 3.67339,
      ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"))),
    (Resources(accelerators=A100_8), ("lambda", "asia-northeast-1", "gpu_8x_a100", 15.92, ())),
    (Resources(accelerators=A100_8, use_spot=True), ("azure", "eastus", "Standard_ND96asr_v4", 2.99167, ())),
    # us-east-2 lists p4d.24xlarge at 21.95764, us-east-1 at 21.957642
    (Resources(accelerators=A100_8, cloud="aws"),
     ("aws", "us-east-2", "p4d.24xlarge", 21.95764, ("use2-az1", "use2-az2"))),
    # spot prices differ per AWS zone: the plan's zones are cheapest first
    (Resources(accelerators=A100_8, cloud="aws", region="us-east-1", use_spot=True),
     ("aws", "us-east-1", "p4d.24xlarge", 6.289, ("use1-az1", "use1-az6", "use1-az2"))),
    (Resources(instance_type="p4d.24xlarge", zone="use1-az2", use_spot=True),
     ("aws", "us-east-1", "p4d.24xlarge", 14.1051, ("use1-az2",))),
    # AWS zone names map to zone IDs per account: the name is kept, the region's prices used
    (Resources(instance_type="p4d.24xlarge", zone="us-east-1a"),
     ("aws", "us-east-1", "p4d.24xlarge", 21.957642, ("us-east-1a",))),
    (Resources(accelerators=(Accelerator("L4", 0.125),)),
     ("aws", "us-east-1", "g6f.large", 0.202, ("use1-az1", "use1-az2", "use1-az4", "use1-az6"))),
    (Resources(accelerators=(Accelerator("T4", 1),), cloud="aws"),
     ("aws", "us-east-1", "g4dn.xlarge", 0.526, ("use1-az1", "use1-az2", "use1-az4", "use1-az5", "use1-az6"))),
    # GCP T4 on the cheapest n1 host with >= 4 vCPUs and 16 GiB: n1-highmem-4 0.23661 + T4 0.35
    (Resources(accelerators=(Accelerator("T4", 1),), cloud="gcp"),
     ("gcp", "us-central1", "n1-highmem-4", 0.58661,
      ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"))),
    # with cpus asked, the cheapest allowed host meeting them: n1-highcpu-8 0.2834 + T4 0.35
    (Resources(accelerators=(Accelerator("T4", 1),), cloud="gcp", region="us-central1", cpus=Amount(8)),
     ("gcp", "us-central1", "n1-highcpu-8", 0.6334, None)),
    (Resources(accelerators=(Accelerator("L4", 1),), cloud="gcp", cpus=Amount(16, True)),
     ("gcp", "us-east4", "g2-standard-16", 1.14346, ("us-east4-a", "us-east4-c"))),
    # tpu-v6e-64: the 700.0 placeholders never win; southamerica-west1 has a real on-demand price
    (Resources(accelerators=(Accelerator("tpu-v6e-64", 1),)), ("gcp", "southamerica-west1", "TPU-VM", 172.8, None)),
    (Resources(accelerators=(Accelerator("tpu-v6e-64", 1),), use_spot=True),
     ("gcp", "asia-southeast1", "TPU-VM", 25.80794, ("asia-southeast1-b",))),
    # the default instance: 8+ vCPUs, 32+ GiB, x86-64, not burstable
    (Resources(), ("aws", "ap-south-1", "m5a.2xlarge", 0.222, None)),
    (Resources(cloud="gcp"), ("gcp", "asia-south1", "n2d-standard-8", 0.22306, None)),
    (Resources(cpus=Amount(4)), ("gcp", "asia-south1", "n2d-highcpu-4", 0.08234, None)),
    # explicit cpus/memory: any x86-64 type, burstable included (only the default excludes them)
    (Resources(cpus=Amount(4), memory=Amount(16), cloud="aws", region="us-east-1"),
     ("aws", "us-east-1", "t3a.xlarge", 0.1504, None)),
    # a pinned GCP accelerator host brings its accelerator and its price
    (Resources(instance_type="a2-highgpu-8g", region="us-central1"),
     ("gcp", "us-central1", "a2-highgpu-8g", 29.38708, None)),
    (Resources(accelerators=A100_8, image_id={"us-west-2": "ami-0123"}),
     ("lambda", "us-west-2", "gpu_8x_a100", 15.92, ())),
]


@pytest.mark.parametrize(("request_", "expected"), CASES, ids=[str(c[0].to_dict()) for c in CASES])
def test_plan_picks_the_row_a_reader_would(request_: Resources, expected: tuple) -> None:
    cloud, region, itype, hourly, zones = expected
    first = plan(request_)[0]
    assert (first.cloud, first.region, first.instance_type) == (cloud, region, itype)
    if hourly is not None:
        assert first.price == pytest.approx(hourly, abs=1e-9)
    if zones is not None:
        assert first.zones == zones


def test_cpu_request_matches_a_brute_force_scan_of_aws() -> None:
    best = min(
        (float(r["Price"]), r["InstanceType"])
        for r in csv_rows("aws")
        if r["Region"] == "eu-west-1" and r["Price"] and not r["AcceleratorName"]
        and float(r["vCPUs"]) == 16 and float(r["MemoryGiB"]) >= 64 and r["Arch"] in ("x86_64", "i386")
    )
    first = plan(Resources(cloud="aws", region="eu-west-1", cpus=Amount(16), memory=Amount(64, True)))[0]
    assert (first.price, first.instance_type) == best


def test_plan_is_sorted_and_every_candidate_fits() -> None:
    req = Resources(cpus=Amount(8, True), memory=Amount(60, True), use_spot=True, max_hourly_cost=0.5)
    cands = plan(req)
    assert [c.price for c in cands] == sorted(c.price for c in cands)
    for c in cands:
        assert c.vcpus is not None and c.vcpus >= 8 and c.memory_gib is not None and c.memory_gib >= 60
        assert c.spot_price == c.price and 0 < c.price <= 0.5
        assert c.accelerator is None and c.arch == "x86_64"


def test_gcp_candidates_never_mix_zones_or_regions() -> None:
    hosts = {(r["InstanceType"], r["AvailabilityZone"]) for r in csv_rows("gcp") if r["InstanceType"]}
    accs = {(r["AcceleratorName"], r["AvailabilityZone"]) for r in csv_rows("gcp") if not r["InstanceType"]}
    for c in plan(Resources(accelerators=(Accelerator("T4", 1),), cloud="gcp")):
        assert c.zones
        for zone in c.zones:
            assert zone.startswith(c.region + "-")
            assert (c.instance_type, zone) in hosts and ("T4", zone) in accs


def test_unknown_prices_never_appear() -> None:
    for req in (Resources(cloud="gcp", instance_type="a4-highgpu-8g"),
                Resources(accelerators=(Accelerator("B200", 8),), cloud="gcp")):
        with pytest.raises(SkyConfigError, match="known on-demand price") as err:
            plan(req)
        assert "price unknown" in str(err.value)
    assert all(c.instance_type != "a4-highgpu-8g" for c in plan(Resources(accelerators=(Accelerator("B200", 8),))))
    tpus = plan(Resources(accelerators=(Accelerator("tpu-v6e-64", 1),)))
    assert all(c.price != 700.0 for c in tpus)
    assert "us-central2" not in {c.region for c in tpus}  # only 700.0 placeholders there


def test_clouds_without_spot_drop_out_of_spot_plans() -> None:
    assert all(c.cloud != "lambda" for c in plan(Resources(accelerators=A100_8, use_spot=True)))
    with pytest.raises(SkyConfigError, match=r"known spot price.*gpu_8x_h100_sxm5.*\$31\.92/h on demand"):
        plan(Resources(accelerators=(Accelerator("H100", 8),), cloud="lambda", use_spot=True))


def test_mac_and_arm_only_when_asked() -> None:
    cands = plan(Resources(cloud="aws", cpus=Amount(4, True), region="us-east-1"))
    assert all(c.arch == "x86_64" for c in cands)
    assert not any(c.instance_type.startswith(("mac", "a1.", "t4g.")) for c in cands)
    assert plan(Resources(instance_type="t4g.xlarge", region="us-east-1"))[0].arch == "arm64"
    assert plan(Resources(accelerators=(Accelerator("T4g", 1),)))[0].instance_type == "g5g.xlarge"
    with pytest.raises(SkyConfigError, match="known on-demand price"):
        plan(Resources(instance_type="mac2.metal"))  # no price upstream


def test_default_instance_skips_burstable_and_retired_sizes() -> None:
    cands = plan(Resources(cloud="azure"))
    assert not any(c.instance_type.startswith(("Standard_B", "Basic_")) or c.instance_type.endswith("_Promo")
                   for c in cands)
    assert all(c.vcpus >= 8 and c.memory_gib >= 32 for c in cands)
    assert not any(re.match(r"t\d", c.instance_type) for c in plan(Resources(cloud="aws")))


def test_fractional_counts_match_exactly() -> None:
    cands = plan(Resources(accelerators=(Accelerator("L4", 0.5),)))
    assert {c.accelerator_count for c in cands} == {0.5}
    assert {c.instance_type.split(".")[0] for c in cands} <= {"g6f", "gr6f"}


def test_case_insensitive_names_and_counts_offered() -> None:
    assert plan(Resources(accelerators=(Accelerator("a100-80gb", 8),)))[0].accelerator == "A100-80GB"
    with pytest.raises(SkyConfigError, match="counts offered: 1, 2, 4, 8, 16"):
        plan(Resources(accelerators=(Accelerator("A100", 3),)))


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (Resources(accelerators=(Accelerator("A100-80G", 8),)), "did you mean 'A100-80GB'"),
        (Resources(accelerators=(Accelerator("MI300X", 8),)), "offered only on"),
        (Resources(instance_type="p4d.24xlarg"), "did you mean 'p4d.24xlarge'"),
        (Resources(accelerators=A100_8, region="us-east-9"), r"region 'us-east-9'.*did you mean"),
        (Resources(accelerators=A100_8, max_hourly_cost=5),
         r"max_hourly_cost \$5/h; cheapest without it: lambda gpu_8x_a100"),
        (Resources(accelerators=(Accelerator("tpu-v5p-8", 1),), cloud="aws"),
         r"not offered on aws; cheapest elsewhere: gcp TPU-VM"),
        (Resources(accelerators=(Accelerator("tpu-v5p-8", 1),), cpus=Amount(4)), "no published vCPU/memory"),
        (Resources(accelerators=(Accelerator("V100", 1),), cloud="gcp", cpus=Amount(12, True)),
         r"cpus 12\+; cheapest without it: gcp n1-"),
        (Resources(cloud="kubernetes"), "has no price catalog"),
        (Resources(accelerators=A100_8, zone="us-east-1a", cloud="azure"), "zone 'us-east-1a'"),
        (Resources(accelerators=A100_8, image_id="skypilot:no-such-image", cloud="aws"), "image_id"),
        (Resources(instance_type="p4d.24xlarge", accelerators=(Accelerator("H100", 8),)),
         "does not carry H100:8"),
        (Resources(instance_type="p4d.24xlarge", accelerators=(Accelerator("tpu-v2-128", 1),)),
         "does not carry tpu-v2-128:1"),
    ],
)
def test_errors_name_the_constraint_and_a_near_miss(req: Resources, message: str) -> None:
    with pytest.raises(SkyConfigError, match=message):
        plan(req)


def test_any_of_is_merged_cheapest_first_and_ordered_keeps_the_users_order() -> None:
    h100, a100 = Resources(accelerators=(Accelerator("H100", 8),)), Resources(accelerators=A100_8)
    merged = plan(Resources(any_of=(h100, a100)))
    assert merged[0].accelerator == "A100" and merged == sorted(merged, key=lambda c: c.price)
    ordered = plan(Resources(ordered=(h100, a100)))
    first_a100 = next(i for i, c in enumerate(ordered) if c.accelerator == "A100")
    assert {c.accelerator for c in ordered[:first_a100]} == {"H100"}
    assert {c.alternative for c in ordered} == {0, 1}
    as_list = plan(Resources(accelerators=(Accelerator("H100", 8), Accelerator("A100", 8)),
                             accelerators_ordered=True))
    assert as_list[0].accelerator == "H100"
    as_set = plan(Resources(accelerators=(Accelerator("H100", 8), Accelerator("A100", 8))))
    assert as_set[0].accelerator == "A100"


def test_infeasible_alternatives_are_skipped_unless_all_are() -> None:
    ok = plan(Resources(any_of=(Resources(cloud="kubernetes"), Resources(accelerators=A100_8))))
    assert ok[0].accelerator == "A100"
    with pytest.raises(SkyConfigError, match=r"alternative 1 .*alternative 2"):
        plan(Resources(ordered=(Resources(cloud="kubernetes"), Resources(accelerators=A100_8, max_hourly_cost=1))))


def test_pins_and_clouds_argument() -> None:
    assert {c.cloud for c in plan(Resources(accelerators=A100_8), clouds=["aws", "azure"])} == {"aws", "azure"}
    assert {c.region for c in plan(Resources(accelerators=A100_8, region="us-east-1"))} == {"us-east-1"}
    gcp_zone = plan(Resources(accelerators=(Accelerator("A100", 1),), zone="us-central1-f"))
    assert {(c.cloud, c.zones) for c in gcp_zone} == {("gcp", ("us-central1-f",))}
    with pytest.raises(SkyConfigError, match="unknown cloud 'nope'"):
        plan(Resources(), clouds=["nope"])
    with pytest.raises(SkyConfigError, match="none of the allowed clouds has a price catalog"):
        plan(Resources(), clouds=["kubernetes", "local"])
    with pytest.raises(SkyConfigError, match="'gcp' is not among the clouds allowed here"):
        plan(Resources(cloud="gcp"), clouds=["aws"])


def test_image_id_limits_regions_and_is_resolved_per_region() -> None:
    images = {"us-east-1": "ami-east", "eu-west-1": "ami-west"}
    cands = plan(Resources(accelerators=(Accelerator("T4", 1),), image_id=images))
    assert {c.region for c in cands} <= set(images)
    assert all(c.image_id == images[c.region] for c in cands)
    tagged = plan(Resources(accelerators=(Accelerator("T4g", 1),), image_id="skypilot:custom-gpu-ubuntu-arm64"))
    allowed = catalog.image_regions("aws", "skypilot:custom-gpu-ubuntu-arm64")
    assert allowed and {c.region for c in tagged} <= allowed


def test_num_nodes_and_json() -> None:
    cands = plan(Resources(accelerators=A100_8), num_nodes=4)
    assert cands[0].cluster_price == pytest.approx(4 * 15.92)
    data = json.loads(json.dumps([c.to_dict() for c in cands]))
    assert set(data[0]) >= {"cloud", "region", "zones", "instance_type", "accelerator", "accelerator_count",
                            "vcpus", "memory_gib", "on_demand_price", "spot_price", "price", "use_spot"}
    assert isinstance(cands[0], Candidate)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SkyConfigError, match="num_nodes"):
            plan(Resources(), num_nodes=bad)  # type: ignore[arg-type]


def test_both_prices_are_the_lowest_among_the_candidates_zones() -> None:
    rows = [r for r in csv_rows("aws") if r["InstanceType"] == "g5.xlarge" and r["Region"] == "us-east-1"]
    (cand,) = plan(Resources(instance_type="g5.xlarge", region="us-east-1"))
    assert cand.on_demand_price == min(float(r["Price"]) for r in rows)
    assert cand.spot_price == min(float(r["SpotPrice"]) for r in rows if r["SpotPrice"])
    assert set(cand.zones) == {r["AvailabilityZone"] for r in rows}
