"""Shared test setup.

Airflow reads ``AIRFLOW_HOME`` and its configuration when it is first imported, so the test
session points it at a private directory here, before any test module imports Airflow: tests
never touch ``~/airflow`` nor a developer's metadata DB.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="sky-airflow-tests-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
(_AIRFLOW_HOME / "dags").mkdir()
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's ``AIRFLOW_HOME`` (``dag.test()`` needs one)."""
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    assert result.returncode == 0, f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return _AIRFLOW_HOME
