"""Hooks of the Sky provider."""

from __future__ import annotations

from airflow_provider_sky.hooks.sky import SkyCredentials, SkyHook

__all__ = ["SkyCredentials", "SkyHook"]
