"""Where the core keeps its state on this machine."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "SKY_AIRFLOW_HOME"


def sky_home() -> Path:
    """The state root: ``$SKY_AIRFLOW_HOME``, default ``~/.sky-airflow``. Read on every call so tests can move it."""
    value = os.environ.get(ENV_HOME)
    return Path(value).expanduser() if value else Path.home() / ".sky-airflow"
