"""Triggers of the Sky provider: the waiting done for deferrable operators and sensors in the triggerer."""

from __future__ import annotations

from airflow_provider_sky.triggers.aws_launch import AwsLaunchTrigger
from airflow_provider_sky.triggers.job import SkyJobTrigger
from airflow_provider_sky.triggers.ssh_ready import SshReadyTrigger

__all__ = ["AwsLaunchTrigger", "SkyJobTrigger", "SshReadyTrigger"]
