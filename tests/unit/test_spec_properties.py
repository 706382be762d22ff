"""Property tests: any input parses or raises SkyConfigError, and valid specs round-trip."""

from __future__ import annotations

import os
import string
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.resources import Resources
from airflow_provider_sky.core.spec import CLOUDS, TaskSpec, parse_resources

# SPEC_MAX_EXAMPLES raises the budget for a longer bug hunt; the default keeps the file fast.
FAST = settings(
    max_examples=int(os.environ.get("SPEC_MAX_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

RESOURCE_FIELDS = [
    "infra",
    "cloud",
    "region",
    "zone",
    "instance_type",
    "cpus",
    "memory",
    "accelerators",
    "use_spot",
    "disk_size",
    "image_id",
    "ports",
    "labels",
    "autostop",
    "max_hourly_cost",
    "any_of",
    "ordered",
]
TASK_FIELDS = ["name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup", "run"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["4+", "32GB", "A100:8", "s3://b/p", "/x", "~/y", "10m", "80-90", "aws/us-east-1", "MOUNT"])
)
keys = (
    st.text(max_size=12) | st.sampled_from(RESOURCE_FIELDS + TASK_FIELDS + ["source", "mode", "down"]) | st.integers()
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.frozensets(st.text(max_size=5), max_size=3)
        | st.tuples(children, children)
    ),
    max_leaves=15,
)


def _parses_or_config_error(fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except SkyConfigError:
        return None


def _check_resources(value: Any) -> None:
    parsed = _parses_or_config_error(parse_resources, value)
    if parsed is not None:
        assert isinstance(parsed, Resources)
        assert parse_resources(parsed.to_dict()) == parsed


def _check_task(value: Any) -> None:
    parsed = _parses_or_config_error(TaskSpec.from_dict, value)
    if parsed is not None:
        assert isinstance(parsed, TaskSpec)
        assert TaskSpec.from_dict(parsed.to_dict()) == parsed


@FAST
@given(st.dictionaries(st.sampled_from(TASK_FIELDS) | keys, json_like, max_size=6))
def test_arbitrary_task_dict(task: dict[Any, Any]) -> None:
    _check_task(task)


@FAST
@given(json_like)
def test_arbitrary_top_level_value(value: Any) -> None:
    _check_task(value)
    _check_resources(value)


@FAST
@given(st.sampled_from(RESOURCE_FIELDS), json_like)
def test_arbitrary_value_for_each_resources_field(name: str, value: Any) -> None:
    _check_resources({name: value})
    _check_resources({"any_of": [{name: value}], "cpus": 2})


@FAST
@given(st.sampled_from(TASK_FIELDS), json_like)
def test_arbitrary_value_for_each_task_field(name: str, value: Any) -> None:
    _check_task({name: value})


resource_text = st.text(alphabet=string.printable + "٣µ+:-/*", max_size=16) | st.text(max_size=8)


@FAST
@given(
    st.sampled_from(["cpus", "memory", "accelerators", "disk_size", "ports", "autostop", "infra", "cloud"]),
    resource_text,
)
def test_arbitrary_text_for_resource_strings(name: str, text: str) -> None:
    _check_resources({name: text})


@FAST
@given(st.sampled_from(["cpus", "memory", "accelerators"]), st.text(alphabet="0123456789.eE+-: GMKTBib", max_size=12))
def test_number_like_text(name: str, text: str) -> None:
    _check_resources({name: text})
    _check_resources({"accelerators": {"A100": text}})


@FAST
@given(st.text(max_size=60) | st.text(alphabet="{}[]:,-?&*!|>'\"# \n\tab1", max_size=60))
def test_arbitrary_yaml_text(text: str) -> None:
    parsed = _parses_or_config_error(TaskSpec.from_yaml, text)
    if parsed is not None:
        assert TaskSpec.from_dict(parsed.to_dict()) == parsed


@FAST
@given(st.dictionaries(st.text(max_size=8) | st.integers(), json_like, max_size=4), st.booleans())
def test_arbitrary_env_overrides(overrides: dict[Any, Any], require_all: bool) -> None:
    spec = TaskSpec.from_dict({"envs": {"A": None}, "secrets": {"S": None}})
    _parses_or_config_error(lambda o: spec.with_envs(o, require_all=require_all), overrides)


# ---------------------------------------------------------------------------
# Round trip of generated valid specs
# ---------------------------------------------------------------------------

word = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=10)
positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False) | st.integers(1, 10**6)
amount = positive | positive.map(lambda v: f"{v}+") | positive.map(str)
memory = amount | st.tuples(
    st.integers(1, 4096), st.sampled_from(["MB", "GB", "GiB", "TB", " GB", "KB"]), st.sampled_from(["", "+"])
).map(lambda t: f"{t[0]}{t[1]}{t[2]}")
acc_name = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=8)
accelerators = (
    acc_name
    | st.tuples(acc_name, positive).map(lambda t: f"{t[0]}:{t[1]}")
    | st.dictionaries(acc_name, st.none() | positive, min_size=1, max_size=3)
    | st.lists(
        st.tuples(acc_name, positive).map(lambda t: f"{t[0]}:{t[1]}"),
        min_size=1,
        max_size=3,
        unique_by=lambda s: s.split(":")[0],
    )
)
infra = st.tuples(st.sampled_from([*CLOUDS, "k8s", "*", "AWS"]), st.lists(word | st.just("*"), max_size=2)).map(
    lambda t: "/".join([t[0], *t[1]])
)
port = st.integers(1, 65535)
ports = port | port.map(str) | st.tuples(port, port).map(lambda t: f"{min(t)}-{max(t)}") | st.lists(port, max_size=3)
autostop = (
    st.booleans()
    | st.integers(0, 10**5)
    | st.tuples(st.integers(0, 999), st.sampled_from(["m", "h", "d", ""])).map(lambda t: f"{t[0]}{t[1]}")
    | st.fixed_dictionaries({}, optional={"idle_minutes": st.integers(0, 999), "down": st.booleans()})
)
plain_resources = st.fixed_dictionaries(
    {},
    optional={
        "infra": infra,
        "instance_type": word,
        "cpus": amount,
        "memory": memory,
        "accelerators": accelerators,
        "use_spot": st.booleans() | st.none(),
        "disk_size": st.integers(1, 10**5),
        "image_id": word | st.dictionaries(word, word, min_size=1, max_size=2),
        "ports": ports,
        "labels": st.dictionaries(word, word | st.integers() | st.booleans(), max_size=3),
        "autostop": autostop,
        "max_hourly_cost": positive,
    },
)
resources_dicts = st.one_of(
    plain_resources,
    st.tuples(
        plain_resources, st.sampled_from(["any_of", "ordered"]), st.lists(plain_resources, min_size=1, max_size=3)
    ).map(lambda t: {**t[0], t[1]: t[2]}),
)
env_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
env_value = (
    st.none() | st.text(max_size=10).filter(lambda s: "\x00" not in s) | st.integers() | st.booleans() | positive
)
remote = st.tuples(st.sampled_from(["/", "~/"]), word).map("".join)
source = word | st.tuples(st.sampled_from(["s3://", "gs://", "gcs://", "S3://"]), word).map("".join)
task_dicts = st.fixed_dictionaries(
    {},
    optional={
        "name": word,
        "workdir": word,
        "num_nodes": st.integers(1, 64),
        "resources": resources_dicts,
        "envs": st.dictionaries(env_name.map(lambda n: "E" + n), env_value, max_size=4),
        "secrets": st.dictionaries(env_name.map(lambda n: "S" + n), env_value, max_size=3),
        "file_mounts": st.dictionaries(
            remote, source | source.map(lambda s: {"source": s, "mode": "copy"}), max_size=3
        ),
        "setup": st.text(max_size=20),
        "run": st.text(max_size=20),
    },
)


@FAST
@given(resources_dicts)
def test_valid_resources_round_trip(value: dict[str, Any]) -> None:
    parsed = parse_resources(value)
    assert parse_resources(parsed.to_dict()) == parsed
    assert parse_resources(yaml.safe_load(yaml.safe_dump(parsed.to_dict(), sort_keys=False))) == parsed


@FAST
@given(task_dicts)
def test_valid_task_round_trip(value: dict[str, Any]) -> None:
    spec = TaskSpec.from_dict(value)
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    assert TaskSpec.from_yaml(yaml.safe_dump(spec.to_dict(), sort_keys=False)) == spec
    filled = spec.with_envs({name: "v" for name in spec.missing_envs()})
    assert filled.missing_envs() == []
