"""Telling static arguments (checked at DAG parse time) from ones rendered at run time."""

from __future__ import annotations

from typing import Any


def is_templated(value: Any) -> bool:
    """Whether ``value`` is, or contains, something only known at run time.

    Jinja strings and XComArgs (anything with ``resolve``) are left for ``execute`` to check.
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(k) or is_templated(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(is_templated(v) for v in value)
    return hasattr(value, "resolve") and not isinstance(value, type)
