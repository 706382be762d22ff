"""Provider metadata, import cost, parse-time validation and trigger serialisation (no sshd needed)."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_sky.core.errors import SkyConfigError

ROOT = Path(__file__).resolve().parents[2]
HANDLE = {
    "cluster_name": "c1",
    "cloud": "local",
    "nodes": [{"rank": 0, "node_id": "c1-0", "ip": "127.0.0.1", "ssh_port": 1}],
}


def test_provider_info_matches_airflow_schema_and_names_real_classes() -> None:
    import jsonschema

    from airflow_provider_sky.get_provider_info import get_provider_info

    info = get_provider_info()
    schema = json.loads(
        (Path(str(importlib.import_module("airflow").__file__)).parent / "provider_info.schema.json").read_text()
    )
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-provider-sky"
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for m in entry["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for path in [*info["extra-links"], info["connection-types"][0]["hook-class-name"]]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path
    fields = info["connection-types"][0]["conn-fields"]
    assert fields["private_key"]["schema"]["format"] == "password"
    assert {"private_key", "ssh_user", "cloud", "hosts"} <= set(fields)


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_sky")]
    assert entry.load()()["package-name"] == "airflow-provider-sky"


def test_importing_the_public_api_loads_no_heavy_library() -> None:
    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "from airflow_provider_sky.operators import SkyLaunchOperator, SkyExecOperator, StorageSyncOperator, "
        "TeardownOperator\n"
        "from airflow_provider_sky.sensors import SshReadySensor\n"
        "from airflow_provider_sky.hooks import SkyHook\n"
        "new = set(sys.modules) - before\n"
        "heavy = sorted(m for m in new if m.split('.')[0] in ('paramiko', 'boto3', 'botocore', 'google', 'kubernetes')"
        " or m.startswith('airflow_provider_sky.core.catalog') or m.startswith('airflow_provider_sky.core.cluster'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def one_line_error(factory, message: str) -> None:
    with pytest.raises(SkyConfigError) as info:
        factory()
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_static_mistakes_fail_when_the_dag_is_parsed() -> None:
    from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, StorageSyncOperator, TeardownOperator
    from airflow_provider_sky.sensors import SshReadySensor

    one_line_error(
        lambda: SkyLaunchOperator(task_id="a", cluster_name="c", cloud="azur"), "cloud: unknown cloud 'azur'"
    )
    from airflow_provider_sky.core.clouds import PLANNED

    for planned in PLANNED:  # clouds of later issues, refused until they land
        one_line_error(
            lambda planned=planned: SkyLaunchOperator(task_id="a", cluster_name="c", cloud=planned),
            f"cloud: cloud {planned!r} is not supported yet",
        )
    one_line_error(lambda: SkyLaunchOperator(task_id="a", cluster_name="bad name"), "cluster_name: invalid value")
    one_line_error(lambda: SkyLaunchOperator(task_id="a", cluster_name="c", resources={"cpu": 2}), "resources")
    one_line_error(
        lambda: SkyLaunchOperator(task_id="a", cluster_name="c", resources=[1]),  # type: ignore[arg-type]
        "resources: expected a dict",
    )
    one_line_error(lambda: SkyLaunchOperator(task_id="a", cluster_name="c", num_nodes=0), "num_nodes: invalid value 0")
    one_line_error(lambda: SkyLaunchOperator(task_id="a", cluster_name="c", task={"runn": "x"}), "task: ")
    one_line_error(
        lambda: SkyLaunchOperator(task_id="a", cluster_name="c", task="/no/such.yaml"), "task: file '/no/such.yaml'"
    )
    one_line_error(lambda: SkyExecOperator(task_id="a", cluster="c"), "run: give run, setup or task")
    one_line_error(
        lambda: SkyExecOperator(task_id="a", cluster={"cloud": "local"}, run="x"), "cluster: malformed cluster handle"
    )
    one_line_error(
        lambda: SkyExecOperator(task_id="a", cluster="c", run="x", envs={"1A": 1}), "envs: invalid variable name"
    )
    one_line_error(lambda: SshReadySensor(task_id="a", cluster=None), "cluster: missing")
    one_line_error(
        lambda: TeardownOperator(task_id="a", cluster="c", action="destroy"), "action: invalid value 'destroy'"
    )
    one_line_error(
        lambda: StorageSyncOperator(task_id="a", source="gs://bucket/k", destination="cluster:/x", cluster="c"),
        "source: scheme 'gs'",
    )
    one_line_error(
        lambda: StorageSyncOperator(task_id="a", source="s3://b/k", destination="cluster:/x", cluster="c"),
        "source: invalid S3 bucket name 'b'",
    )
    one_line_error(
        lambda: StorageSyncOperator(task_id="a", source="/x", destination="gs://b", cluster="c"),
        "destination: scheme 'gs'",
    )
    one_line_error(lambda: StorageSyncOperator(task_id="a", source="/x", destination="cluster:/y"), "cluster: required")
    one_line_error(
        lambda: StorageSyncOperator(task_id="a", source="/x", destination="/y", cluster="c"), "destination: neither"
    )
    one_line_error(
        lambda: StorageSyncOperator(task_id="a", source="/x", destination="cluster:/y", cluster="c", include=[3]),  # type: ignore[list-item]
        "include:",
    )


def test_templated_values_are_left_for_execute() -> None:
    import datetime

    from airflow.sdk import DAG

    from airflow_provider_sky.operators import SkyExecOperator, SkyLaunchOperator, StorageSyncOperator

    with DAG("templated", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
        launch = SkyLaunchOperator(task_id="a", cluster_name="t-{{ ds_nodash }}", resources="{{ params.r }}")
        SkyExecOperator(task_id="b", cluster=launch.output, run="{{ params.cmd }}", envs="{{ params.envs }}")
        StorageSyncOperator(task_id="c", source="{{ params.src }}", destination="cluster:/x", cluster=launch.output)
    assert launch.template_fields == ("cluster_name", "cluster_resources", "task")


def test_a_dag_file_with_a_static_mistake_is_an_import_error(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "bad_dag.py").write_text(
        "import datetime\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_sky.operators import SkyLaunchOperator\n"
        "with DAG('bad', schedule=None, start_date=datetime.datetime(2026, 1, 1)):\n"
        "    SkyLaunchOperator(task_id='launch', cluster_name='c', cloud='nimbus')\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    (error,) = bag.import_errors.values()
    assert "SkyConfigError: cloud: unknown cloud 'nimbus'" in error


def test_example_dags_parse() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert {"sky_train_local", "sky_batch_backfill"} <= set(bag.dag_ids)
    train = bag.dags["sky_train_local"]
    assert train.get_task("teardown").is_teardown
    backfill = bag.dags["sky_batch_backfill"]
    assert backfill.catchup and "ds_nodash" in backfill.get_task("launch").cluster_name  # type: ignore[union-attr]


def round_trip(trigger):
    """Serialise as the task SDK does for the trigger table, then rebuild from the class path."""
    from airflow.sdk.serde import deserialize, serialize

    classpath, kwargs = trigger.serialize()
    stored = json.dumps(serialize(kwargs))  # only JSON goes into the trigger table
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**deserialize(json.loads(stored)))  # type: ignore[arg-type]
    assert rebuilt.serialize() == (classpath, kwargs)
    return stored


def test_triggers_round_trip_losslessly_and_hold_no_secret() -> None:
    from airflow_provider_sky.triggers import SkyJobTrigger, SshReadyTrigger

    stored = round_trip(SshReadyTrigger(HANDLE, "sky_x", deadline=1.5e9, poll_interval=0.25))
    stored += round_trip(SkyJobTrigger(HANDLE, "af-1-1", "sky_x", offset=[3, 5], poll_interval=0.5, log_interval=2.0))
    stored += round_trip(SkyJobTrigger(HANDLE, "af-1-1"))
    assert "PRIVATE KEY" not in stored


def run_trigger(trigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_triggers_yield_error_events_instead_of_raising(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_sky.triggers import SkyJobTrigger, SshReadyTrigger

    monkeypatch.setenv("SKY_AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SKY_DEFAULT", json.dumps({"conn_type": "sky", "extra": {"cloud": "local"}}))
    # Port 1 accepts nothing: the node is never ready, and the deadline has passed.
    (event,) = run_trigger(SshReadyTrigger(HANDLE, deadline=0.0, poll_interval=0.01))
    assert event["status"] == "timeout" and "node(s) 0 not ready" in event["message"]
    (event,) = run_trigger(SshReadyTrigger({"cluster_name": "x"}, deadline=0.0))
    assert event["status"] == "error" and "SkyConfigError" in event["message"]
    (event,) = run_trigger(SkyJobTrigger(HANDLE, "af-1-1"))
    assert event["status"] == "error" and event["job_id"] == "af-1-1" and event["handle"] == HANDLE
