"""Extra links of the Sky provider."""

from __future__ import annotations

from airflow_provider_sky.links.cluster import SkyClusterLink
from airflow_provider_sky.links.ec2 import Ec2ConsoleLink

__all__ = ["Ec2ConsoleLink", "SkyClusterLink"]
