"""The example DAGs of dags/, run end to end as a user would run them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import local_clusters

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def test_sky_train_local(run_dag, sky_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.setenv("SKY_DEMO_RESULTS", str(tmp_path / "results"))
    logical = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
    result = run_dag(load("sky_train_local"), logical_date=logical)

    assert set(result.states.values()) == {"success"}, result.states
    run_dir = tmp_path / "results" / "20260504T000000"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [n["rank"] for n in summary["nodes"]] == [0, 1]
    # Each node trained on its own half of the 4000 rows.
    assert [n["train_rows"] for n in summary["nodes"]] == [2000, 2000]
    assert summary["averaged_test_accuracy"] > 0.85
    for rank in (0, 1):
        assert (run_dir / f"node-{rank}" / "model.json").is_file()
    assert result.xcom("report")["averaged_test_accuracy"] == summary["averaged_test_accuracy"]
    assert result.xcom("launch")["cluster_name"] == "sky-train-20260504T000000"
    text = capfd.readouterr().out
    assert "(node 1) rank 1/2: 2000 of 4000 training rows" in text
    assert local_clusters(sky_home) == []


def test_sky_batch_backfill_gives_each_run_its_own_cluster(run_dag, sky_home: Path) -> None:
    dag = load("sky_batch_backfill")
    assert dag.catchup
    names = []
    for day in (1, 2):
        result = run_dag(dag, logical_date=dt.datetime(2026, 1, day, tzinfo=dt.UTC))
        assert set(result.states.values()) == {"success"}, result.states
        names.append(result.xcom("launch")["cluster_name"])
        assert result.xcom("batch")["state"] == "SUCCEEDED"
    assert names == ["batch-20260101", "batch-20260102"]
    assert local_clusters(sky_home) == []
