"""Sensors of the Sky provider."""

from __future__ import annotations

from airflow_provider_sky.sensors.ssh_ready import SshReadySensor

__all__ = ["SshReadySensor"]
