"""Property-based tests: any resource request, as YAML-style strings, gives a plan or a SkyConfigError.

Requests go through the real spec parser, so the strings are what users type.
Whatever the plan, its candidates honour the request.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sky.core import catalog
from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.optimizer import Candidate, plan
from airflow_provider_sky.core.spec import parse_resources

ACC_NAMES = sorted({n for c in catalog.CLOUDS for n in catalog.load(c).acc_index if not n.startswith("tpu-v5p")})
REGIONS = sorted({r for c in catalog.CLOUDS for r in catalog.load(c).region})
junk = st.text(alphabet="aA1:+.-*/ xG", max_size=6)

counts = st.one_of(st.sampled_from(["1", "2", "4", "8", "16", "0.5", "0.125", "3"]), junk)
accelerator = st.builds(lambda n, sep, c: f"{n}{sep}{c}", st.one_of(st.sampled_from(ACC_NAMES).map(
    lambda n: n.lower() if len(n) % 2 else n), junk), st.sampled_from([":", ""]), counts)
accelerators = st.one_of(
    accelerator,
    st.lists(accelerator, min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(ACC_NAMES), st.sampled_from([1, 2, 8, 0.5]), min_size=1, max_size=3),
)
amount = st.one_of(st.sampled_from(["1", "2", "4", "4+", "8+", "16", "32+", "0.5", "96+", "1000+"]), junk)
memory = st.one_of(st.sampled_from(["8", "16+", "32GB", "64GiB+", "512M+", "1T+", "1.5", "4096MiB"]), junk)
cloud = st.sampled_from(["aws", "gcp", "azure", "lambda", "kubernetes", "local", "*", "GCP", "nope"])
region = st.one_of(st.sampled_from(REGIONS), st.sampled_from(["us-east-9", "*"]), junk)
infra = st.builds(lambda c, r: f"{c}/{r}", cloud, region)
instance_type = st.sampled_from(["p4d.24xlarge", "m5.large", "n2-standard-8", "a2-highgpu-8g", "gpu_8x_a100",
                                 "Standard_ND96asr_v4", "t4g.xlarge", "mac2.metal", "no.such", "TPU-VM"])

single = st.fixed_dictionaries({}, optional={
    "accelerators": accelerators,
    "cpus": amount,
    "memory": memory,
    "cloud": cloud,
    "region": region,
    "infra": infra,
    "instance_type": instance_type,
    "use_spot": st.booleans(),
    "max_hourly_cost": st.one_of(st.floats(min_value=0.01, max_value=200), st.sampled_from([0, -1, "x"])),
    "image_id": st.one_of(st.dictionaries(st.sampled_from(REGIONS), st.just("img-1"), min_size=1, max_size=3),
                          st.sampled_from(["skypilot:custom-gpu-ubuntu-arm64", "ami-123"])),
})
request = st.one_of(
    single,
    st.builds(lambda base, alts, key: {**base, key: alts}, single, st.lists(single, min_size=1, max_size=3),
              st.sampled_from(["any_of", "ordered"])),
)


def _amount_ok(amount: Any, offered: float | None) -> bool:
    return amount is None or (offered is not None and amount.satisfied_by(offered))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=request, num_nodes=st.sampled_from([1, 2, 3]))
def test_a_request_gives_a_plan_or_a_config_error(spec: dict[str, Any], num_nodes: int) -> None:
    try:
        resources = parse_resources(spec)
        cands = plan(resources, num_nodes=num_nodes)
    except SkyConfigError as exc:
        assert str(exc)
        return
    concrete, ordered = resources.candidates()
    assert cands and all(isinstance(c, Candidate) for c in cands)
    if not ordered:
        assert [c.price for c in cands] == sorted(c.price for c in cands)
    for c in cands:
        req = concrete[c.alternative]
        assert math.isfinite(c.price) and c.price > 0
        assert c.price == (c.spot_price if req.use_spot else c.on_demand_price)
        assert c.cluster_price == round(c.price * num_nodes, 8)
        assert _amount_ok(req.cpus, c.vcpus) and _amount_ok(req.memory, c.memory_gib)
        if req.max_hourly_cost is not None:
            assert c.price <= req.max_hourly_cost + 1e-9
        if req.cloud is not None:
            assert c.cloud == req.cloud
        if req.region is not None:
            assert c.region == req.region
        if req.instance_type is not None:
            assert c.instance_type == req.instance_type
        if req.accelerator is not None:
            assert c.accelerator is not None and c.accelerator.lower() == req.accelerator.name.lower()
            assert c.accelerator_count == req.accelerator.count
        if isinstance(req.image_id, dict):
            assert c.region in req.image_id
        if c.cloud in ("aws", "gcp"):
            assert c.zones


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=12).filter(lambda s: ":" not in s and s.strip()))
def test_any_accelerator_name_is_planned_or_refused_helpfully(name: str) -> None:
    try:
        plan(parse_resources({"accelerators": f"{name}:1"}))
    except SkyConfigError as exc:
        assert "accelerator" in str(exc) or "no candidate" in str(exc)
