"""Table-driven tests of the task-spec parser: every accepted form, every error path."""

from __future__ import annotations

import pathlib
import textwrap
from typing import Any

import pytest

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.resources import Accelerator, Amount, Autostop, Resources
from airflow_provider_sky.core.spec import FileMount, TaskSpec, parse_resources

# ---------------------------------------------------------------------------
# resources: valid forms
# ---------------------------------------------------------------------------

VALID_RESOURCES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # infra
    ({"infra": "aws"}, {"cloud": "aws", "region": None, "zone": None}),
    ({"infra": "AWS"}, {"cloud": "aws"}),
    ({"infra": "aws/us-east-1"}, {"cloud": "aws", "region": "us-east-1"}),
    ({"infra": "aws/us-east-1/us-east-1a"}, {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"}),
    ({"infra": " gcp/us-central1/ "}, {"cloud": "gcp", "region": "us-central1"}),
    ({"infra": "k8s/my-ctx"}, {"cloud": "kubernetes", "region": "my-ctx"}),
    ({"infra": "kubernetes/arn:aws:eks:x/cluster/a"}, {"cloud": "kubernetes", "region": "arn:aws:eks:x/cluster/a"}),
    ({"infra": "k8s"}, {"cloud": "kubernetes", "region": None}),
    ({"infra": "ssh/my-pool"}, {"cloud": "ssh", "region": "my-pool"}),
    ({"infra": "*/us-east-1"}, {"cloud": None, "region": "us-east-1"}),
    ({"infra": "aws/*/us-east-1a"}, {"cloud": "aws", "region": None, "zone": "us-east-1a"}),
    ({"infra": "*"}, {"cloud": None}),
    ({"infra": "lambda"}, {"cloud": "lambda"}),
    ({"infra": "local"}, {"cloud": "local"}),
    ({"infra": "azure/eastus"}, {"cloud": "azure", "region": "eastus"}),
    ({"infra": None}, {"cloud": None}),
    # older location keys
    ({"cloud": "GCP", "region": "us-central1"}, {"cloud": "gcp", "region": "us-central1"}),
    ({"cloud": "k8s"}, {"cloud": "kubernetes"}),
    ({"zone": "us-east-1a"}, {"cloud": None, "region": None, "zone": "us-east-1a"}),
    # instance type
    ({"instance_type": "p3.8xlarge"}, {"instance_type": "p3.8xlarge"}),
    # cpus
    ({"cpus": 4}, {"cpus": Amount(4)}),
    ({"cpus": 4.5}, {"cpus": Amount(4.5)}),
    ({"cpus": "4"}, {"cpus": Amount(4)}),
    ({"cpus": "4+"}, {"cpus": Amount(4, at_least=True)}),
    ({"cpus": " 0.5 + "}, {"cpus": Amount(0.5, at_least=True)}),
    # memory (GiB, binary units)
    ({"memory": 32}, {"memory": Amount(32)}),
    ({"memory": "32+"}, {"memory": Amount(32, True)}),
    ({"memory": "32GB"}, {"memory": Amount(32)}),
    ({"memory": "32GB+"}, {"memory": Amount(32, True)}),
    ({"memory": "32GiB"}, {"memory": Amount(32)}),
    ({"memory": "32 GB"}, {"memory": Amount(32)}),
    ({"memory": "32gb"}, {"memory": Amount(32)}),
    ({"memory": "512MB"}, {"memory": Amount(0.5)}),
    ({"memory": "1TB"}, {"memory": Amount(1024)}),
    ({"memory": "1T"}, {"memory": Amount(1024)}),
    ({"memory": "1048576KB"}, {"memory": Amount(1)}),
    ({"memory": "1073741824B"}, {"memory": Amount(1)}),
    ({"memory": "1PB"}, {"memory": Amount(1024 * 1024)}),
    # accelerators
    ({"accelerators": "A100:8"}, {"accelerators": (Accelerator("A100", 8),), "accelerators_ordered": False}),
    ({"accelerators": "A100"}, {"accelerators": (Accelerator("A100", 1),)}),
    ({"accelerators": " tpu-v2-8 "}, {"accelerators": (Accelerator("tpu-v2-8", 1),)}),
    ({"accelerators": {"A100": 8}}, {"accelerators": (Accelerator("A100", 8),)}),
    ({"accelerators": {"A100": 0.5}}, {"accelerators": (Accelerator("A100", 0.5),)}),
    ({"accelerators": "A100:0.5"}, {"accelerators": (Accelerator("A100", 0.5),)}),
    (
        {"accelerators": ["V100:1", "A100:1"]},
        {"accelerators": (Accelerator("V100"), Accelerator("A100")), "accelerators_ordered": True},
    ),
    (
        {"accelerators": ["V100:1", {"A100": 2}]},
        {"accelerators": (Accelerator("V100"), Accelerator("A100", 2)), "accelerators_ordered": True},
    ),
    ({"accelerators": ["V100:2"]}, {"accelerators": (Accelerator("V100", 2),), "accelerators_ordered": False}),
    (
        {"accelerators": {"V100": None, "A100": None}},  # YAML {V100, A100}
        {"accelerators": (Accelerator("V100"), Accelerator("A100")), "accelerators_ordered": False},
    ),
    (
        {"accelerators": {"V100": 1, "A100": 4}},
        {"accelerators": (Accelerator("V100"), Accelerator("A100", 4)), "accelerators_ordered": False},
    ),
    (
        {"accelerators": {"V100", "A100"}},  # a Python set: sorted for determinism
        {"accelerators": (Accelerator("A100"), Accelerator("V100")), "accelerators_ordered": False},
    ),
    ({"accelerators": None}, {"accelerators": ()}),
    # use_spot
    ({"use_spot": True}, {"use_spot": True}),
    ({"use_spot": False}, {"use_spot": False}),
    # disk_size
    ({"disk_size": 256}, {"disk_size": 256}),
    ({"disk_size": "256"}, {"disk_size": 256}),
    ({"disk_size": "256GB"}, {"disk_size": 256}),
    ({"disk_size": 256.0}, {"disk_size": 256}),
    # image_id
    ({"image_id": "ami-123"}, {"image_id": "ami-123"}),
    ({"image_id": "docker:ubuntu:22.04"}, {"image_id": "docker:ubuntu:22.04"}),
    (
        {"image_id": {"us-east-1": "ami-1", "us-west-2": "ami-2"}},
        {"image_id": {"us-east-1": "ami-1", "us-west-2": "ami-2"}},
    ),
    # ports
    ({"ports": 8080}, {"ports": ("8080",)}),
    ({"ports": "8080"}, {"ports": ("8080",)}),
    ({"ports": "10000-10010"}, {"ports": ("10000-10010",)}),
    ({"ports": "10000 - 10010"}, {"ports": ("10000-10010",)}),
    ({"ports": "80-80"}, {"ports": ("80",)}),
    ({"ports": [8080, "8081", "9000-9010", 8080]}, {"ports": ("8080", "8081", "9000-9010")}),
    ({"ports": [1, 65535]}, {"ports": ("1", "65535")}),
    ({"ports": []}, {"ports": ()}),
    # labels
    (
        {"labels": {"team": "ml", "n": 3, "x": 1.5, "on": True}},
        {"labels": {"team": "ml", "n": "3", "x": "1.5", "on": "true"}},
    ),
    # autostop
    ({"autostop": True}, {"autostop": Autostop(5)}),
    ({"autostop": False}, {"autostop": None}),
    ({"autostop": 10}, {"autostop": Autostop(10)}),
    ({"autostop": 0}, {"autostop": Autostop(0)}),
    ({"autostop": "10m"}, {"autostop": Autostop(10)}),
    ({"autostop": "10"}, {"autostop": Autostop(10)}),
    ({"autostop": "2h"}, {"autostop": Autostop(120)}),
    ({"autostop": "1d"}, {"autostop": Autostop(1440)}),
    ({"autostop": {"idle_minutes": 10, "down": True}}, {"autostop": Autostop(10, down=True)}),
    ({"autostop": {"down": True}}, {"autostop": Autostop(5, down=True)}),
    ({"autostop": {"idle_minutes": "1h"}}, {"autostop": Autostop(60)}),
    # max_hourly_cost
    ({"max_hourly_cost": 10}, {"max_hourly_cost": 10.0}),
    ({"max_hourly_cost": 0.25}, {"max_hourly_cost": 0.25}),
    # empty
    ({}, {"cloud": None, "cpus": None, "accelerators": (), "any_of": (), "ordered": ()}),
]


@pytest.mark.parametrize(("given", "expected"), VALID_RESOURCES, ids=[repr(g)[:60] for g, _ in VALID_RESOURCES])
def test_valid_resources(given: dict[str, Any], expected: dict[str, Any]) -> None:
    parsed = parse_resources(given)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name
    # Every accepted form survives a round trip through the YAML form.
    assert parse_resources(parsed.to_dict()) == parsed


def test_parse_resources_none_and_passthrough() -> None:
    assert parse_resources(None) == Resources()
    existing = Resources(cloud="aws")
    assert parse_resources(existing) is existing


def test_any_of_entries_merge_over_fields_beside_them() -> None:
    parsed = parse_resources(
        {
            "cpus": "4+",
            "use_spot": True,
            "accelerators": "A100:8",
            "infra": "aws/us-east-1",
            "any_of": [{"infra": "gcp"}, {"use_spot": False, "region": "us-west-2"}, {"accelerators": "H100:8"}],
        }
    )
    first, second, third = parsed.any_of
    assert (first.cloud, first.region, first.cpus, first.use_spot) == ("gcp", None, Amount(4, True), True)
    assert (second.cloud, second.region, second.use_spot) == ("aws", "us-west-2", False)
    assert third.accelerators == (Accelerator("H100", 8),)
    assert parsed.ordered == ()
    requests, ordered = parsed.candidates()
    assert len(requests) == 3 and ordered is False
    assert parse_resources(parsed.to_dict()) == parsed


def test_ordered_alternatives() -> None:
    parsed = parse_resources({"ordered": [{"infra": "aws/us-east-1"}, {"infra": "aws/us-west-2"}]})
    assert [r.region for r in parsed.ordered] == ["us-east-1", "us-west-2"]
    assert parsed.candidates()[1] is True
    assert parse_resources(parsed.to_dict()) == parsed


def test_alternative_reset_to_default_round_trips() -> None:
    parsed = parse_resources(
        {
            "use_spot": True,
            "labels": {"a": "b"},
            "autostop": 10,
            "accelerators": "A100",
            "any_of": [{"use_spot": False, "labels": None, "autostop": False, "accelerators": None}, {}],
        }
    )
    reset = parsed.any_of[0]
    assert (reset.use_spot, reset.labels, reset.autostop, reset.accelerators) == (False, {}, None, ())
    assert parse_resources(parsed.to_dict()) == parsed


def test_amount_precision_round_trips() -> None:
    parsed = parse_resources({"memory": "1000MB", "cpus": 1234567.25, "accelerators": {"X": 1234567.5}})
    assert parse_resources(parsed.to_dict()) == parsed


# ---------------------------------------------------------------------------
# resources: invalid forms (path named, bad value shown, accepted forms listed)
# ---------------------------------------------------------------------------

INVALID_RESOURCES: list[tuple[Any, str, list[str]]] = [
    ("not a mapping", "resources", ["must be a mapping", "'not a mapping'"]),
    ({"cpu": 4}, "resources.cpu", ["unknown key", "did you mean 'cpus'"]),
    ({"acelerators": "A100"}, "resources.acelerators", ["did you mean 'accelerators'"]),
    ({1: 2}, "resources.1", ["keys must be strings"]),
    # infra / location
    ({"infra": "gpc"}, "resources.infra", ["unknown cloud", "did you mean 'gcp'", "aws, gcp"]),
    ({"infra": "aws//x"}, "resources.infra", ["empty part"]),
    ({"infra": "aws/a/b/c"}, "resources.infra", ["too many parts", "<cloud>/<region>/<zone>"]),
    ({"infra": ""}, "resources.infra", ["must not be empty"]),
    ({"infra": 3}, "resources.infra", ["must be a string", "(got 3)"]),
    ({"infra": "aws", "region": "x"}, "resources.infra", ["either infra or region"]),
    ({"infra": "aws", "cloud": "aws", "zone": "z"}, "resources.infra", ["either infra or cloud/zone"]),
    ({"cloud": "oracle"}, "resources.cloud", ["unknown cloud", "'oracle'", "kubernetes"]),
    ({"cloud": ["aws"]}, "resources.cloud", ["must be a cloud name"]),
    ({"region": ""}, "resources.region", ["non-empty string"]),
    ({"zone": 5}, "resources.zone", ["non-empty string"]),
    ({"instance_type": {"a": 1}}, "resources.instance_type", ["non-empty string"]),
    # cpus / memory
    ({"cpus": "4x"}, "resources.cpus", ["not a valid amount", "'4x'", "'4+'"]),
    ({"cpus": "4GB"}, "resources.cpus", ["not a valid amount"]),
    ({"cpus": 0}, "resources.cpus", ["greater than 0"]),
    ({"cpus": -2}, "resources.cpus", ["greater than 0"]),
    ({"cpus": True}, "resources.cpus", ["must be a number or a string"]),
    ({"cpus": float("nan")}, "resources.cpus", ["finite"]),
    ({"cpus": float("inf")}, "resources.cpus", ["finite"]),
    ({"cpus": 10**400}, "resources.cpus", ["out of range"]),
    ({"cpus": "+4"}, "resources.cpus", ["not a valid amount"]),
    ({"cpus": [4]}, "resources.cpus", ["must be a number or a string"]),
    ({"memory": "32XB"}, "resources.memory", ["not a valid amount", "'512MB'"]),
    ({"memory": "0GB"}, "resources.memory", ["greater than 0"]),
    ({"memory": "1e-400"}, "resources.memory", ["greater than 0"]),
    ({"memory": "1e308PB"}, "resources.memory", ["greater than 0"]),
    ({"memory": "-1GB"}, "resources.memory", ["not a valid amount"]),
    ({"memory": "٣GB"}, "resources.memory", ["not a valid amount"]),
    # accelerators
    ({"accelerators": ""}, "resources.accelerators", ["non-empty", "'A100:8'"]),
    ({"accelerators": "A100:0"}, "resources.accelerators", ["greater than 0"]),
    ({"accelerators": "A100:-1"}, "resources.accelerators", ["must be a number"]),
    ({"accelerators": "A100:x"}, "resources.accelerators", ["must be a number"]),
    ({"accelerators": "A100:1:2"}, "resources.accelerators", ["'NAME:COUNT'"]),
    ({"accelerators": ":4"}, "resources.accelerators", ["name must be a non-empty string"]),
    ({"accelerators": {"A100": 0}}, "resources.accelerators.A100", ["greater than 0"]),
    ({"accelerators": {"A100": True}}, "resources.accelerators.A100", ["must be a number"]),
    ({"accelerators": {"A100": "lots"}}, "resources.accelerators.A100", ["must be a number"]),
    ({"accelerators": {"": 1}}, "resources.accelerators.", ["non-empty"]),
    ({"accelerators": {"A:B": 1}}, "resources.accelerators.A:B", ["must not contain ':'"]),
    ({"accelerators": {}}, "resources.accelerators", ["at least one"]),
    ({"accelerators": []}, "resources.accelerators", ["at least one"]),
    ({"accelerators": ["A100", 3]}, "resources.accelerators[1]", ["each entry"]),
    ({"accelerators": ["A100", "A100:2"]}, "resources.accelerators", ["listed twice"]),
    ({"accelerators": 8}, "resources.accelerators", ["not a valid accelerator request", "{A100: 8}"]),
    # use_spot and friends
    ({"use_spot": "yes"}, "resources.use_spot", ["must be a boolean", "true or false"]),
    ({"use_spot": 1}, "resources.use_spot", ["must be a boolean"]),
    ({"disk_size": 0}, "resources.disk_size", ["greater than 0"]),
    ({"disk_size": 25.5}, "resources.disk_size", ["not a valid disk size", "'256GB'"]),
    ({"disk_size": "big"}, "resources.disk_size", ["not a valid disk size"]),
    ({"disk_size": True}, "resources.disk_size", ["not a valid disk size"]),
    ({"disk_size": "256TB"}, "resources.disk_size", ["not a valid disk size"]),
    ({"image_id": ""}, "resources.image_id", ["must not be empty"]),
    ({"image_id": {}}, "resources.image_id", ["not a valid image id"]),
    ({"image_id": {"us-east-1": 5}}, "resources.image_id.us-east-1", ["image id must be a non-empty string"]),
    ({"image_id": 5}, "resources.image_id", ["not a valid image id"]),
    # ports
    ({"ports": 0}, "resources.ports", ["between 1 and 65535", "'10000-10010'"]),
    ({"ports": 65536}, "resources.ports", ["between 1 and 65535"]),
    ({"ports": "10-5"}, "resources.ports", ["low to high"]),
    ({"ports": "http"}, "resources.ports", ["not a valid port"]),
    ({"ports": [80, "x"]}, "resources.ports[1]", ["not a valid port"]),
    ({"ports": True}, "resources.ports", ["not a valid port"]),
    ({"ports": "9" * 50}, "resources.ports", ["not a valid port"]),
    # labels
    ({"labels": ["a"]}, "resources.labels", ["must be a mapping"]),
    ({"labels": {"a": None}}, "resources.labels.a", ["must be a scalar"]),
    ({"labels": {"a": [1]}}, "resources.labels.a", ["must be a scalar"]),
    ({"labels": {"": "x"}}, "resources.labels.", ["non-empty"]),
    ({"labels": {3: "x"}}, "resources.labels.3", ["label names must be non-empty strings"]),
    # autostop
    ({"autostop": -1}, "resources.autostop", ["must not be negative", "'2h'"]),
    ({"autostop": "soon"}, "resources.autostop", ["not a valid idle time"]),
    ({"autostop": "10s"}, "resources.autostop", ["not a valid idle time"]),
    ({"autostop": 1.5}, "resources.autostop", ["not a valid idle time"]),
    ({"autostop": {"idle_minutes": "x"}}, "resources.autostop.idle_minutes", ["not a valid idle time"]),
    ({"autostop": {"down": "yes"}}, "resources.autostop.down", ["must be a boolean"]),
    ({"autostop": {"idle": 5}}, "resources.autostop.idle", ["did you mean 'idle_minutes'"]),
    ({"autostop": {"wait_for": "none"}}, "resources.autostop.wait_for", ["not supported yet"]),
    ({"autostop": {"hook": "echo"}}, "resources.autostop.hook", ["not supported yet"]),
    # cost
    ({"max_hourly_cost": 0}, "resources.max_hourly_cost", ["greater than 0"]),
    ({"max_hourly_cost": "10"}, "resources.max_hourly_cost", ["must be a number"]),
    ({"max_hourly_cost": False}, "resources.max_hourly_cost", ["must be a number"]),
    # alternatives
    ({"any_of": [{"cpus": 1}], "ordered": [{"cpus": 2}]}, "resources", ["either any_of or ordered"]),
    ({"any_of": []}, "resources.any_of", ["non-empty list"]),
    ({"any_of": {"cpus": 1}}, "resources.any_of", ["non-empty list"]),
    ({"any_of": ["aws"]}, "resources.any_of[0]", ["must be a mapping"]),
    ({"any_of": [{"cpus": 1}, {"cpus": "x"}]}, "resources.any_of[1].cpus", ["not a valid amount"]),
    ({"ordered": [{"any_of": [{}]}]}, "resources.ordered[0].any_of", ["cannot be nested"]),
    ({"any_of": [{"ordered": [{}]}]}, "resources.any_of[0].ordered", ["cannot be nested"]),
    ({"any_of": [{"cpu": 1}]}, "resources.any_of[0].cpu", ["did you mean 'cpus'"]),
    # real SkyPilot keys we do not support
    ({"job_recovery": "none"}, "resources.job_recovery", ["not supported yet"]),
    ({"accelerator_args": {}}, "resources.accelerator_args", ["not supported yet"]),
    ({"disk_tier": "best"}, "resources.disk_tier", ["not supported yet"]),
    ({"network_tier": "best"}, "resources.network_tier", ["not supported yet"]),
]


@pytest.mark.parametrize(
    ("given", "path", "fragments"), INVALID_RESOURCES, ids=[repr(g)[:60] for g, _, _ in INVALID_RESOURCES]
)
def test_invalid_resources(given: Any, path: str, fragments: list[str]) -> None:
    with pytest.raises(SkyConfigError) as info:
        parse_resources(given)
    message = str(info.value)
    assert type(info.value) is SkyConfigError
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_resource_errors_list_accepted_forms() -> None:
    for given in ({"cpus": "x"}, {"memory": "x"}, {"accelerators": 5}, {"ports": "x"}, {"autostop": "x"}):
        with pytest.raises(SkyConfigError, match="accepted: "):
            parse_resources(given)


def test_custom_path_is_used() -> None:
    with pytest.raises(SkyConfigError, match=r"^resources\[2\]\.cpus: "):
        parse_resources({"cpus": "x"}, path="resources[2]")


def test_long_bad_values_are_truncated() -> None:
    with pytest.raises(SkyConfigError) as info:
        parse_resources({"cpus": "x" * 10_000})
    assert len(str(info.value)) < 500


# ---------------------------------------------------------------------------
# whole task
# ---------------------------------------------------------------------------

FULL_YAML = textwrap.dedent(
    """
    name: train
    workdir: ~/code
    num_nodes: 2
    resources:
      infra: aws/us-east-1
      accelerators: {V100, A100}
      cpus: 4+
      memory: 32GB+
      ports: [8080]
      any_of:
        - use_spot: true
        - infra: gcp
    envs:
      MODEL: llama
      STEPS: 100
      LR: 0.5
      DEBUG: true
      TOKEN_NAME: null
    secrets:
      HF_TOKEN: null
      API_KEY: abc
    file_mounts:
      /data: ./data
      ~/ckpt: s3://bucket/ckpt
      /gcs: gcs://other/path
      /dict: {source: gs://b/p, mode: copy, name: b}
    setup: pip install -r requirements.txt
    run: |
      python train.py
    """
)


def test_full_task() -> None:
    spec = TaskSpec.from_yaml(FULL_YAML)
    assert spec.name == "train"
    assert spec.workdir == "~/code"
    assert spec.num_nodes == 2
    assert spec.resources.cloud == "aws"
    assert spec.resources.accelerators == (Accelerator("V100"), Accelerator("A100"))
    assert not spec.resources.accelerators_ordered
    assert [r.cloud for r in spec.resources.any_of] == ["aws", "gcp"]
    assert spec.envs == {"MODEL": "llama", "STEPS": "100", "LR": "0.5", "DEBUG": "True", "TOKEN_NAME": None}
    assert spec.secrets == {"HF_TOKEN": None, "API_KEY": "abc"}
    assert spec.file_mounts == {
        "/data": FileMount("./data", "local"),
        "~/ckpt": FileMount("s3://bucket/ckpt", "bucket"),
        "/gcs": FileMount("gs://other/path", "bucket"),
        "/dict": FileMount("gs://b/p", "bucket"),
    }
    assert spec.setup == "pip install -r requirements.txt"
    assert spec.run == "python train.py\n"
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    assert hash(spec) == hash(TaskSpec.from_dict(spec.to_dict()))


def test_empty_task_and_defaults() -> None:
    sources: list[str | dict[str, Any]] = ["", "# only a comment\n", {}]
    for source in sources:
        spec = TaskSpec.from_yaml(source)
        assert spec == TaskSpec()
        assert spec.num_nodes == 1 and spec.resources == Resources() and spec.envs == {}
        assert TaskSpec.from_dict(spec.to_dict()) == spec


def test_from_yaml_sources(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "task.yaml"
    path.write_text("name: from-file\nrun: echo hi\n")
    assert TaskSpec.from_yaml(path).name == "from-file"
    assert TaskSpec.from_yaml(str(path)).name == "from-file"
    other = tmp_path / "task.txt"
    other.write_text("name: any-existing-file\n")
    assert TaskSpec.from_yaml(str(other)).name == "any-existing-file"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert TaskSpec.from_yaml("~/task.yaml").name == "from-file"
    assert TaskSpec.from_yaml(b"name: bytes\n").name == "bytes"
    assert TaskSpec.from_yaml({"name": "mapping"}).name == "mapping"
    assert TaskSpec.from_yaml("{name: inline}").name == "inline"
    assert TaskSpec.from_yaml("{run: cat a.yaml}").run == "cat a.yaml"
    assert TaskSpec.from_yaml("run: cat a.yml").run == "cat a.yml"


def test_secrets_are_masked() -> None:
    spec = TaskSpec.from_yaml("secrets: {HF_TOKEN: hf_verysecret, EMPTY: null}\nenvs: {A: b}")
    assert "hf_verysecret" not in repr(spec)
    assert "hf_verysecret" not in str(spec.to_dict(mask_secrets=True))
    assert spec.to_dict()["secrets"] == {"HF_TOKEN": "hf_verysecret", "EMPTY": None}
    assert spec.secret_values() == ["hf_verysecret"]


def test_missing_envs_and_with_envs() -> None:
    spec = TaskSpec.from_yaml("envs: {A: null, B: x}\nsecrets: {S: null, T: t}")
    assert spec.missing_envs() == ["A", "S"]
    with pytest.raises(SkyConfigError) as info:
        spec.with_envs({})
    assert "A" in str(info.value) and "S" in str(info.value)
    with pytest.raises(SkyConfigError, match=r"\bS\b"):
        spec.with_envs({"A": "1"})
    partial = spec.with_envs({"A": 1}, require_all=False)
    assert partial.envs["A"] == "1" and partial.missing_envs() == ["S"]
    full = spec.with_envs({"A": True, "S": "secret", "NEW": 2.5, "B": "override"})
    assert full.envs == {"A": "True", "B": "override", "NEW": "2.5"}
    assert full.secrets == {"S": "secret", "T": "t"}
    assert full.missing_envs() == []
    assert spec.missing_envs() == ["A", "S"]  # the original is unchanged
    assert spec.with_envs(None, require_all=False) == spec


@pytest.mark.parametrize(
    ("overrides", "path", "fragment"),
    [
        ({"MY VAR": "x"}, "env overrides.MY VAR", "invalid variable name"),
        ({"A": None}, "env overrides.A", "must have a value"),
        ({"A": [1]}, "env overrides.A", "must be a scalar"),
        ({1: "x"}, "env overrides.1", "invalid variable name"),
        (["A=1"], "env overrides", "must be a mapping"),
    ],
)
def test_with_envs_invalid(overrides: Any, path: str, fragment: str) -> None:
    spec = TaskSpec.from_yaml("envs: {A: null}")
    with pytest.raises(SkyConfigError) as info:
        spec.with_envs(overrides)
    assert str(info.value).startswith(path + ": ") and fragment in str(info.value)


INVALID_TASKS: list[tuple[Any, str, list[str]]] = [
    ("nmae: x", "nmae", ["unknown key", "did you mean 'name'", "accepted: keys name"]),
    ("service: {}", "service", ["not supported yet"]),
    ("config: {}", "config", ["not supported yet"]),
    ("name: 5", "name", ["non-empty string", "(got 5)"]),
    ("name: ''", "name", ["non-empty string"]),
    ("workdir: {url: https://github.com/x/y}", "workdir", ["git workdir", "not supported yet"]),
    ("workdir: 3", "workdir", ["local directory path"]),
    ("num_nodes: 0", "num_nodes", ["positive whole number"]),
    ("num_nodes: 1.5", "num_nodes", ["positive whole number"]),
    ("num_nodes: '2'", "num_nodes", ["positive whole number"]),
    ("num_nodes: true", "num_nodes", ["positive whole number"]),
    ("resources: 4", "resources", ["must be a mapping"]),
    ("resources: {cpus: 4x}", "resources.cpus", ["'4+'"]),
    ("envs: [A]", "envs", ["must be a mapping"]),
    ("envs: {MY VAR: 1}", "envs.MY VAR", ["invalid variable name", "[A-Za-z_][A-Za-z0-9_]*"]),
    ("envs: {1A: x}", "envs.1A", ["invalid variable name"]),
    ("envs: {1: x}", "envs.1", ["invalid variable name"]),
    ("envs: {A: [1]}", "envs.A", ["must be a scalar", "null (required at launch)"]),
    ("envs: {A: {b: 1}}", "envs.A", ["must be a scalar"]),
    ('envs: {A: "x\\0y"}', "envs.A", ["NUL"]),
    ("secrets: {B-C: x}", "secrets.B-C", ["invalid variable name"]),
    ("envs: {A: x}\nsecrets: {A: y}", "secrets.A", ["also defined in envs"]),
    ("file_mounts: [x]", "file_mounts", ["must be a mapping"]),
    ("file_mounts: {data: ./d}", "file_mounts.data", ["absolute or start with ~/"]),
    ("file_mounts: {~data: ./d}", "file_mounts.~data", ["absolute or start with ~/"]),
    ("file_mounts: {1: ./d}", "file_mounts.1", ["remote path must be a string"]),
    ("file_mounts: {/d: ''}", "file_mounts./d", ["non-empty string"]),
    ("file_mounts: {/d: 5}", "file_mounts./d", ["non-empty string", "'s3://bucket/path'"]),
    ("file_mounts: {/d: [a, b]}", "file_mounts./d", ["list of sources is not supported yet"]),
    ("file_mounts: {/d: 's3://'}", "file_mounts./d", ["no bucket name"]),
    ("file_mounts: {/d: 'r2://b/p'}", "file_mounts./d", ["r2:// sources are not supported yet", "s3://, gs://"]),
    (
        "file_mounts: {/d: 'https://acct.blob.core.windows.net/c'}",
        "file_mounts./d",
        ["https:// sources are not supported yet"],
    ),
    ("file_mounts: {/d: 'ftp://host/x'}", "file_mounts./d", ["unknown URL scheme ftp://", "s3://, gs://"]),
    (
        "file_mounts: {/data: {source: s3://b, mode: MOUNT}}",
        "file_mounts./data.mode",
        ["mode MOUNT is not supported yet; use COPY"],
    ),
    (
        "file_mounts: {/data: {source: s3://b, mode: MOUNT_CACHED}}",
        "file_mounts./data.mode",
        ["mode MOUNT_CACHED is not supported yet; use COPY"],
    ),
    ("file_mounts: {/data: {source: s3://b, mode: SYNC}}", "file_mounts./data.mode", ["unknown mode", "COPY"]),
    ("file_mounts: {/data: {source: s3://b, mode: 1}}", "file_mounts./data.mode", ["must be a string"]),
    ("file_mounts: {/data: {name: my-bucket}}", "file_mounts./data", ["creating a bucket", "not supported yet"]),
    ("file_mounts: {/data: {mode: COPY}}", "file_mounts./data", ["source is required"]),
    ("file_mounts: {/data: {source: s3://b, store: s3}}", "file_mounts./data.store", ["not supported yet"]),
    ("file_mounts: {/data: {sorce: s3://b}}", "file_mounts./data.sorce", ["did you mean 'source'"]),
    ("file_mounts: {/data: {source: s3://b, name: ''}}", "file_mounts./data.name", ["non-empty string"]),
    ("setup: [a, b]", "setup", ["string of shell commands"]),
    ("run: 5", "run", ["string of shell commands"]),
    ("- 1", "task YAML", ["top level must be a mapping"]),
    ("just text", "task YAML", ["top level must be a mapping"]),
    ("a: [", "task YAML", ["invalid YAML at line 1"]),
    ("name: x\nrun: [\n  a,\n  b: c: d\n", "task YAML", ["invalid YAML at line 4"]),
    ("a: 2020-13-45", "task YAML", ["invalid YAML"]),
    ("x: 1\n---\ny: 2", "task YAML", ["pipelines) are not supported yet"]),
    ("[" * 5000, "task YAML", ["nested too deeply"]),
    (b"\xff\xfe", "task YAML", ["UTF-8"]),
    (12, "task", ["expected a path, YAML text or a mapping"]),
    ("missing-file.yaml", "task YAML file 'missing-file.yaml'", ["cannot read it"]),
]


@pytest.mark.parametrize(("given", "path", "fragments"), INVALID_TASKS, ids=[repr(g)[:60] for g, _, _ in INVALID_TASKS])
def test_invalid_tasks(given: Any, path: str, fragments: list[str]) -> None:
    with pytest.raises(SkyConfigError) as info:
        TaskSpec.from_yaml(given)
    message = str(info.value)
    assert type(info.value) is SkyConfigError
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(SkyConfigError, match=r"^task: must be a mapping"):
        TaskSpec.from_dict(["name"])  # type: ignore[arg-type]


def test_deeply_nested_python_values() -> None:
    deep: Any = "x"
    for _ in range(50_000):
        deep = [deep]
    for task in ({"resources": {"labels": {"a": deep}}}, {"envs": {"A": deep}}, {"resources": deep}, {"nmae": deep}):
        with pytest.raises(SkyConfigError):
            TaskSpec.from_dict(task)


def test_self_referencing_yaml_aliases() -> None:
    with pytest.raises(SkyConfigError):
        TaskSpec.from_yaml("envs: &a {A: *a}")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(SkyConfigError, match="unknown key"):
        TaskSpec.from_yaml(bomb)
