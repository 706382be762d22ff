"""Resolving the ``cluster`` argument: a launch task's output, a handle dict (or its text) or a name."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_sky.core.errors import SkyConfigError

ACCEPTED = "the launch task's output (launch.output), a cluster handle dict or a cluster name"


@dataclass(frozen=True)
class ClusterRef:
    """Either a full handle (``handle`` set) or only a name to look up on a cloud."""

    name: str
    handle: dict[str, Any] | None = None


def parse_cluster_ref(value: Any, param: str = "cluster") -> ClusterRef:
    """Validate the ``cluster`` argument once rendered; raise one :class:`SkyConfigError` line naming ``param``.

    A handle rendered through a plain Jinja template arrives as text (JSON, or a Python dict
    repr), so both are parsed back into a dict.
    """
    from airflow_provider_sky.core.clouds.base import check_cluster_name
    from airflow_provider_sky.core.handle import ClusterHandle

    if value is None or (isinstance(value, str) and not value.strip()):
        raise SkyConfigError(f"{param}: missing; accepted: {ACCEPTED}")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = _parse_handle_text(text, param)
        else:
            try:
                return ClusterRef(check_cluster_name(text))
            except SkyConfigError as exc:
                raise SkyConfigError(f"{param}: {str(exc).removeprefix('cluster_name: ')}") from None
    if isinstance(value, ClusterHandle):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise SkyConfigError(f"{param}: expected {ACCEPTED}, got {type(value).__name__}")
    try:
        handle = ClusterHandle.from_dict(dict(value))
        check_cluster_name(handle.cluster_name)
    except SkyConfigError as exc:
        raise SkyConfigError(f"{param}: malformed {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SkyConfigError(f"{param}: malformed cluster handle ({exc})") from None
    return ClusterRef(handle.cluster_name, handle.to_dict())


def _parse_handle_text(text: str, param: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise SkyConfigError(f"{param}: malformed cluster handle text {text!r:.60}; expected {ACCEPTED}") from None
