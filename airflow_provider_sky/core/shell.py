"""Pure builders for the shell text sent to nodes. Every user value is quoted here."""

from __future__ import annotations

import re
import shlex

from airflow_provider_sky.core.errors import SkyConfigError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env_name(name: object, path: str = "envs") -> str:
    if not isinstance(name, str) or not ENV_NAME.match(name):
        raise SkyConfigError(
            f"{path}: invalid environment variable name {name!r}; accepted: letters, digits and '_', "
            "not starting with a digit"
        )
    return name


def env_exports(envs: dict[str, str], path: str = "envs") -> str:
    """``export NAME='value'`` lines; values arrive literally whatever characters they hold."""
    lines = []
    for name, value in envs.items():
        check_env_name(name, path)
        if value is None:
            raise SkyConfigError(f"{path}.{name}: a value is required (it is null in the task)")
        lines.append(f"export {name}={shlex.quote(str(value))}\n")
    return "".join(lines)


def remote_path(path: str) -> str:
    """A remote path as sent to SFTP and rsync: ``~/x`` becomes ``x`` (relative to the login directory).

    rsync 3.2.4+ protects arguments from the remote shell, so ``~`` would not expand there.
    """
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    return path
