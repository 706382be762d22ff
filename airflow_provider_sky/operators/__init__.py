"""Operators of the Sky provider.

Importing this package loads Airflow's SDK and the core's light modules only; paramiko and the
catalog load when a task runs.
"""

from __future__ import annotations

from airflow_provider_sky.operators.exec import SkyExecOperator
from airflow_provider_sky.operators.launch import SkyLaunchOperator
from airflow_provider_sky.operators.sync import StorageSyncOperator
from airflow_provider_sky.operators.teardown import TeardownOperator

__all__ = ["SkyExecOperator", "SkyLaunchOperator", "StorageSyncOperator", "TeardownOperator"]
