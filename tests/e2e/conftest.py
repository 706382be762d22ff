"""Fixtures for whole-DAG runs with ``dag.test()`` against the local cloud (real sshd, no mocks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.process_table import assert_nothing_left_running

pytestmark = pytest.mark.e2e


def local_clusters(home: Path) -> list[str]:
    """Names of the local clusters with state under ``home`` (a torn-down cluster leaves none)."""
    return sorted(p.parent.name for p in (home / "local").glob("*/cluster.json"))


@pytest.fixture(autouse=True)
def sky_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Iterator[Path]:
    """A private ``SKY_AIRFLOW_HOME``; the test fails if any process it started is still running."""
    home = tmp_path / "sky-home"
    home.mkdir()
    monkeypatch.setenv("SKY_AIRFLOW_HOME", str(home))
    yield home
    assert_nothing_left_running(home)


def register(dag: Any) -> None:
    """Write a DAG built in a test into the metadata DB, as the DAG processor would for a DAG file."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.commit()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


class DagRunResult:
    """A finished ``dag.test()`` run: its state, task states and XComs."""

    def __init__(self, dr: Any) -> None:
        from airflow.utils.session import create_session

        self.dr = dr
        self.state = str(dr.state)
        with create_session() as session:
            self.tis = {ti.task_id: ti for ti in dr.get_task_instances(session=session)}
            self.states = {task_id: str(ti.state) for task_id, ti in self.tis.items()}
            self.tries = {task_id: ti.try_number for task_id, ti in self.tis.items()}

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(dag_id=self.dr.dag_id, run_id=self.dr.run_id, task_id=task_id, key=key)
                .one_or_none()
            )
            return None if row is None else XComModel.deserialize_value(row)


@pytest.fixture
def run_dag() -> Any:
    """``run_dag(dag, **test_kwargs)``: register the DAG, run it with ``dag.test()``, return a DagRunResult."""

    def run(dag: Any, **kwargs: Any) -> DagRunResult:
        register(dag)
        return DagRunResult(dag.test(**kwargs))

    return run
