"""Extra links of the Sky provider."""

from __future__ import annotations

from airflow_provider_sky.links.cluster import SkyClusterLink

__all__ = ["SkyClusterLink"]
