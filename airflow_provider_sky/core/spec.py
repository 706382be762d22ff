"""Parse SkyPilot-style task YAML into typed, validated objects.

The accepted syntax is a subset of SkyPilot's task YAML (see ``docs/task-spec.md``).
Every bad input raises :class:`~airflow_provider_sky.core.errors.SkyConfigError`
whose message names the offending path (``resources.any_of[1].cpus``), shows the
bad value and lists the accepted forms; no other exception type escapes.

Memory units: ``KB``/``MB``/``GB``/``TB``/``PB`` and ``KiB``/``MiB``/... are all
binary (base 1024), as in SkyPilot, and amounts are stored in GiB.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.resources import Accelerator, Amount, Autostop, Resources

__all__ = ["CLOUDS", "FileMount", "TaskSpec", "parse_resources"]

#: Cloud names accepted in ``infra``/``cloud`` (``k8s`` is an alias of ``kubernetes``).
CLOUDS = ("local", "ssh", "aws", "gcp", "azure", "kubernetes", "lambda")
_CLOUD_ALIASES = {"k8s": "kubernetes"}
# Clouds whose infra tail is one opaque name (a kube context may itself contain "/").
_OPAQUE_REGION_CLOUDS = ("kubernetes", "ssh")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_AMOUNT_RE = re.compile(rf"\s*(?P<num>{_NUMBER})\s*(?P<plus>\+)?\s*", re.ASCII)
_MEMORY_RE = re.compile(
    rf"\s*(?P<num>{_NUMBER})\s*(?P<unit>[KMGTP]i?B?|B)?\s*(?P<plus>\+)?\s*", re.ASCII | re.IGNORECASE
)
_MEMORY_UNITS_GIB = {"B": 2.0**-30, "K": 2.0**-20, "M": 2.0**-10, "G": 1.0, "T": 2.0**10, "P": 2.0**20}
_DISK_RE = re.compile(r"\s*(?P<num>[0-9]{1,18})\s*(?:GB|GiB|G)?\s*", re.ASCII | re.IGNORECASE)
_DURATION_RE = re.compile(r"\s*(?P<num>[0-9]{1,12})\s*(?P<unit>m|min|h|d)?\s*", re.ASCII | re.IGNORECASE)
_DURATION_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 1440}
_PORT_RE = re.compile(r"\s*(?P<low>[0-9]{1,9})\s*(?:-\s*(?P<high>[0-9]{1,9})\s*)?", re.ASCII)
_YAML_TEXT_HINT = re.compile(r":\s|[{}\[\]]")
_URL_SCHEME_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://", re.ASCII)

_DEFAULT_AUTOSTOP_MINUTES = 5

_RESOURCE_KEYS = (
    "infra",
    "cloud",
    "region",
    "zone",
    "instance_type",
    "cpus",
    "memory",
    "accelerators",
    "use_spot",
    "disk_size",
    "image_id",
    "ports",
    "labels",
    "autostop",
    "max_hourly_cost",
    "any_of",
    "ordered",
)
_RESOURCE_UNSUPPORTED = (
    "job_recovery",
    "spot_recovery",
    "accelerator_args",
    "disk_tier",
    "network_tier",
    "volumes",
    "priority",
)
_TASK_KEYS = ("name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup", "run")
_TASK_UNSUPPORTED = ("service", "config", "inputs", "outputs", "event_callback", "volumes", "experimental")
_FILE_MOUNT_KEYS = ("source", "mode", "name")
_FILE_MOUNT_UNSUPPORTED = ("store", "persistent", "config", "_bucket_sub_path", "_force_delete")
_AUTOSTOP_KEYS = ("idle_minutes", "down")
_AUTOSTOP_UNSUPPORTED = ("wait_for", "hook", "hook_timeout")
_BUCKET_SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs"}
_UNSUPPORTED_SCHEMES = ("r2", "https", "cos", "oci", "nebius", "az")

_ACCEPTED_INFRA = "'<cloud>', '<cloud>/<region>', '<cloud>/<region>/<zone>', 'k8s/<context>'; '*' means any"
_ACCEPTED_CLOUDS = ", ".join(CLOUDS) + " (k8s is an alias of kubernetes)"
_ACCEPTED_CPUS = "a positive number (4, 4.5, '4') or a lower bound ('4+')"
_ACCEPTED_MEMORY = (
    "a positive number of GiB (32, '32') or with a unit ('512MB', '32GB', '32GiB', '1TB'), "
    "optionally a lower bound ('32GB+')"
)
_ACCEPTED_ACCELERATORS = (
    "'A100', 'A100:8', {A100: 8}, {A100: 0.5}, a list of preferences ['V100:1', 'A100:1'] "
    "or a set / mapping of alternatives {V100, A100}"
)
_ACCEPTED_PORTS = "a port 1..65535 (8080, '8080'), a range '10000-10010', or a list of those"
_ACCEPTED_AUTOSTOP = "true, false, idle minutes (10, '10m', '2h', '1d') or {idle_minutes: 10, down: true}"
_ACCEPTED_ENV_VALUE = "a string, number, boolean, or null (required at launch)"
_ACCEPTED_FILE_MOUNT = "'local/path', 's3://bucket/path', 'gs://bucket/path', or {source: ..., mode: COPY}"

_NOTHING: Any = object()
_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 40


def _show(value: Any) -> str:
    """A short, never-failing repr for error messages (the value may be huge or hostile)."""
    try:
        text = _repr.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 200 else text[:197] + "..."


def _fail(path: str, problem: str, value: Any = _NOTHING, accepted: str | None = None) -> NoReturn:
    message = f"{path}: {problem}"
    if value is not _NOTHING:
        message += f" (got {_show(value)})"
    if accepted:
        message += f"; accepted: {accepted}"
    raise SkyConfigError(message)


def _key_path(path: str, key: Any) -> str:
    name = key if isinstance(key, str) else _show(key)
    if len(name) > 60:
        name = name[:57] + "..."
    return f"{path}.{name}" if path else name


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _to_float(value: Any, path: str, accepted: str) -> float:
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        _fail(path, "number out of range", value, accepted)
    if not math.isfinite(number):
        _fail(path, "must be a finite number", value, accepted)
    return number


def _check_mapping(value: Any, path: str, allowed: Iterable[str], unsupported: Iterable[str] = ()) -> None:
    """Reject non-mappings, non-string keys and unknown keys (with a did-you-mean hint)."""
    allowed = tuple(allowed)
    if not isinstance(value, Mapping):
        _fail(path or "task", "must be a mapping", value, "keys " + ", ".join(allowed))
    unsupported = tuple(unsupported)
    for key in value:
        if not isinstance(key, str):
            _fail(_key_path(path, key), "keys must be strings", key, ", ".join(allowed))
        if key in allowed:
            continue
        if key in unsupported:
            _fail(_key_path(path, key), f"{key!r} is not supported yet")
        hint = difflib.get_close_matches(key[:100], allowed + unsupported, n=1, cutoff=0.5)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        _fail(_key_path(path, key), f"unknown key {_show(key)}{suggestion}", accepted="keys " + ", ".join(allowed))


def _optional_str(value: Any, path: str, what: str = "a non-empty string") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail(path, f"must be {what}", value, what)
    return str(value).strip()


# ---------------------------------------------------------------------------
# Resources fields
# ---------------------------------------------------------------------------


def _parse_cloud(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(path, "must be a cloud name", value, _ACCEPTED_CLOUDS)
    name = value.strip().lower()
    name = _CLOUD_ALIASES.get(name, name)
    if name == "*":
        return None
    if name not in CLOUDS:
        hint = difflib.get_close_matches(name[:100], CLOUDS + tuple(_CLOUD_ALIASES), n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        _fail(path, f"unknown cloud{suggestion}", value, _ACCEPTED_CLOUDS)
    return name


def _parse_infra(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, str):
        _fail(path, "must be a string", value, _ACCEPTED_INFRA)
    text = value.strip().strip("/")
    if not text:
        _fail(path, "must not be empty", value, _ACCEPTED_INFRA)
    parts = [p.strip() for p in text.split("/")]
    if "" in parts:
        _fail(path, "has an empty part (e.g. '//')", value, _ACCEPTED_INFRA)
    cloud = _parse_cloud(parts[0], path)
    region: str | None
    zone: str | None = None
    if cloud in _OPAQUE_REGION_CLOUDS:
        region = "/".join(parts[1:]) or None
    else:
        if len(parts) > 3:
            _fail(path, "has too many parts", value, _ACCEPTED_INFRA)
        region = parts[1] if len(parts) > 1 else None
        zone = parts[2] if len(parts) > 2 else None
    return {
        "cloud": cloud,
        "region": None if region == "*" else region,
        "zone": None if zone == "*" else zone,
    }


def _parse_amount(value: Any, path: str, memory: bool) -> Amount | None:
    accepted = _ACCEPTED_MEMORY if memory else _ACCEPTED_CPUS
    if value is None:
        return None
    at_least = False
    if _is_number(value):
        number = _to_float(value, path, accepted)
    elif isinstance(value, str):
        match = (_MEMORY_RE if memory else _AMOUNT_RE).fullmatch(value)
        if match is None:
            _fail(path, "not a valid amount", value, accepted)
        number = _to_float(match["num"], path, accepted)
        at_least = match["plus"] is not None
        if memory and match["unit"]:
            number *= _MEMORY_UNITS_GIB[match["unit"][0].upper()]
    else:
        _fail(path, "must be a number or a string", value, accepted)
    if not math.isfinite(number) or number <= 0:
        _fail(path, "must be greater than 0", value, accepted)
    return Amount(number, at_least)


def _parse_count(value: Any, path: str) -> float:
    if value is None:
        return 1.0
    if isinstance(value, str):
        match = re.fullmatch(rf"\s*{_NUMBER}\s*", value, re.ASCII)
        if match is None:
            _fail(path, "accelerator count must be a number", value, "a positive number such as 1, 8 or 0.5")
    elif not _is_number(value):
        _fail(path, "accelerator count must be a number", value, "a positive number such as 1, 8 or 0.5")
    count = _to_float(value, path, "a positive number")
    if count <= 0:
        _fail(path, "accelerator count must be greater than 0", value, "a positive number such as 1, 8 or 0.5")
    return count


def _accelerator_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, "accelerator name must be a non-empty string", value, _ACCEPTED_ACCELERATORS)
    name = value.strip()
    if ":" in name:
        _fail(path, "accelerator name must not contain ':'", value, _ACCEPTED_ACCELERATORS)
    return name


def _parse_accelerator_str(value: str, path: str) -> Accelerator:
    name, sep, count = value.partition(":")
    if sep and ":" in count:
        _fail(path, "expected 'NAME' or 'NAME:COUNT'", value, _ACCEPTED_ACCELERATORS)
    return Accelerator(_accelerator_name(name, path), _parse_count(count if sep else None, path))


def _parse_accelerators(value: Any, path: str) -> tuple[tuple[Accelerator, ...], bool]:
    """Return (accelerators, ordered); ordered only for a list of several entries."""
    if value is None:
        return (), False
    accelerators: list[Accelerator] = []
    ordered = False
    if isinstance(value, str):
        accelerators.append(_parse_accelerator_str(value, path))
    elif isinstance(value, Mapping):
        for name, count in value.items():
            item_path = _key_path(path, name)
            accelerators.append(Accelerator(_accelerator_name(name, item_path), _parse_count(count, item_path)))
    elif isinstance(value, list | tuple):
        ordered = True
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if isinstance(item, str):
                accelerators.append(_parse_accelerator_str(item, item_path))
            elif isinstance(item, Mapping) and len(item) == 1:
                ((name, count),) = item.items()
                accelerators.append(Accelerator(_accelerator_name(name, item_path), _parse_count(count, item_path)))
            else:
                _fail(
                    item_path,
                    "each entry must be 'NAME:COUNT' or {NAME: COUNT}",
                    item,
                    _ACCEPTED_ACCELERATORS,
                )
    elif isinstance(value, set | frozenset):
        # A Python set has no order of its own; sort so that equal inputs parse equal.
        names = []
        for name in value:
            names.append(_accelerator_name(name, path))
        accelerators = [Accelerator(name) for name in sorted(names)]
    else:
        _fail(path, "not a valid accelerator request", value, _ACCEPTED_ACCELERATORS)
    if not accelerators:
        _fail(path, "must name at least one accelerator", value, _ACCEPTED_ACCELERATORS)
    seen: set[str] = set()
    for acc in accelerators:
        if acc.name in seen:
            _fail(path, f"accelerator {_show(acc.name)} is listed twice", value, _ACCEPTED_ACCELERATORS)
        seen.add(acc.name)
    return tuple(accelerators), ordered and len(accelerators) > 1


def _parse_bool(value: Any, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        _fail(path, "must be a boolean", value, "true or false")
    return value


def _parse_disk_size(value: Any, path: str) -> int | None:
    accepted = "a positive whole number of GB (256, '256', '256GB')"
    if value is None:
        return None
    if _is_int(value) or (_is_number(value) and _to_float(value, path, accepted).is_integer()):
        size = int(value)
    elif isinstance(value, str) and (match := _DISK_RE.fullmatch(value)):
        size = int(match["num"])
    else:
        _fail(path, "not a valid disk size", value, accepted)
    if size <= 0:
        _fail(path, "must be greater than 0", value, accepted)
    return size


def _parse_image_id(value: Any, path: str) -> str | dict[str, str] | None:
    accepted = "an image id string, or a mapping of region to image id"
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            _fail(path, "must not be empty", value, accepted)
        return value.strip()
    if not isinstance(value, Mapping) or not value:
        _fail(path, "not a valid image id", value, accepted)
    out: dict[str, str] = {}
    for region, image in value.items():
        item_path = _key_path(path, region)
        if not isinstance(region, str) or not region.strip():
            _fail(item_path, "region must be a non-empty string", region, accepted)
        if not isinstance(image, str) or not image.strip():
            _fail(item_path, "image id must be a non-empty string", image, accepted)
        out[region.strip()] = image.strip()
    return out


def _parse_port(value: Any, path: str) -> str:
    if _is_int(value):
        low = high = int(value)
    elif isinstance(value, str) and (match := _PORT_RE.fullmatch(value)):
        low = int(match["low"])
        high = int(match["high"]) if match["high"] is not None else low
    else:
        _fail(path, "not a valid port or port range", value, _ACCEPTED_PORTS)
    if not 1 <= low <= 65535 or not 1 <= high <= 65535:
        _fail(path, "ports must be between 1 and 65535", value, _ACCEPTED_PORTS)
    if low > high:
        _fail(path, "a range must go from low to high", value, _ACCEPTED_PORTS)
    return str(low) if low == high else f"{low}-{high}"


def _parse_ports(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = list(value) if isinstance(value, list | tuple) else [value]
    ports: list[str] = []
    for index, item in enumerate(items):
        port = _parse_port(item, f"{path}[{index}]" if isinstance(value, list | tuple) else path)
        if port not in ports:
            ports.append(port)
    return tuple(ports)


def _scalar_str(value: Any, path: str, accepted: str, bool_style: str) -> str:
    """Stringify a YAML scalar; ``bool_style`` is "python" (True) or "lower" (true)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        text = str(value)
        return text.lower() if bool_style == "lower" else text
    if _is_number(value):
        try:
            return str(value)
        except ValueError:  # an int too long for str()
            _fail(path, "number too large", value, accepted)
    _fail(path, "must be a scalar", value, accepted)


def _parse_labels(value: Any, path: str) -> dict[str, str]:
    accepted = "a mapping of label name to string / number / boolean"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(path, "must be a mapping", value, accepted)
    labels: dict[str, str] = {}
    for key, item in value.items():
        item_path = _key_path(path, key)
        if not isinstance(key, str) or not key.strip():
            _fail(item_path, "label names must be non-empty strings", key, accepted)
        labels[str(key)] = _scalar_str(item, item_path, accepted, "lower")
    return labels


def _parse_minutes(value: Any, path: str) -> int:
    if _is_int(value):
        minutes = int(value)
    elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value)):
        minutes = int(match["num"]) * _DURATION_MINUTES[(match["unit"] or "m").lower()]
    else:
        _fail(path, "not a valid idle time", value, _ACCEPTED_AUTOSTOP)
    if minutes < 0:
        _fail(path, "must not be negative", value, _ACCEPTED_AUTOSTOP)
    return minutes


def _parse_autostop(value: Any, path: str) -> Autostop | None:
    if value is None or value is False:
        return None
    if value is True:
        return Autostop(_DEFAULT_AUTOSTOP_MINUTES)
    if isinstance(value, Mapping):
        _check_mapping(value, path, _AUTOSTOP_KEYS, _AUTOSTOP_UNSUPPORTED)
        minutes = value.get("idle_minutes")
        idle = _DEFAULT_AUTOSTOP_MINUTES if minutes is None else _parse_minutes(minutes, f"{path}.idle_minutes")
        return Autostop(idle, _parse_bool(value.get("down"), f"{path}.down"))
    return Autostop(_parse_minutes(value, path))


def _parse_cost(value: Any, path: str) -> float | None:
    accepted = "a positive number of dollars per hour"
    if value is None:
        return None
    if not _is_number(value):
        _fail(path, "must be a number", value, accepted)
    cost = _to_float(value, path, accepted)
    if cost <= 0:
        _fail(path, "must be greater than 0", value, accepted)
    return cost


def _resource_fields(value: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Parse the plain (non-alternative) keys given in one resources mapping.

    Returns only the Resources fields the mapping sets, so that an ``any_of`` entry
    can be merged over the fields given beside it. A null value sets the default.
    """
    fields: dict[str, Any] = {}
    location_keys = [k for k in ("cloud", "region", "zone") if k in value]
    if value.get("infra") is not None and location_keys:
        _fail(
            _key_path(path, "infra"),
            f"give either infra or {'/'.join(location_keys)}, not both",
            accepted=_ACCEPTED_INFRA,
        )
    fields.update(_parse_infra(value.get("infra"), _key_path(path, "infra")))
    if "cloud" in value:
        fields["cloud"] = _parse_cloud(value["cloud"], _key_path(path, "cloud"))
    for key in ("region", "zone", "instance_type"):
        if key in value:
            fields[key] = _optional_str(value[key], _key_path(path, key))
    if "cpus" in value:
        fields["cpus"] = _parse_amount(value["cpus"], _key_path(path, "cpus"), memory=False)
    if "memory" in value:
        fields["memory"] = _parse_amount(value["memory"], _key_path(path, "memory"), memory=True)
    if "accelerators" in value:
        accs, ordered = _parse_accelerators(value["accelerators"], _key_path(path, "accelerators"))
        fields["accelerators"] = accs
        fields["accelerators_ordered"] = ordered
    simple = {
        "use_spot": _parse_bool,
        "disk_size": _parse_disk_size,
        "image_id": _parse_image_id,
        "ports": _parse_ports,
        "labels": _parse_labels,
        "autostop": _parse_autostop,
        "max_hourly_cost": _parse_cost,
    }
    for key, parser in simple.items():
        if key in value:
            fields[key] = parser(value[key], _key_path(path, key))
    return fields


def _parse_alternatives(value: Any, path: str, base: dict[str, Any]) -> tuple[Resources, ...]:
    accepted = "a non-empty list of resources mappings"
    if not isinstance(value, list | tuple) or not value:
        _fail(path, "must be a non-empty list", value, accepted)
    out = []
    for index, entry in enumerate(value):
        entry_path = f"{path}[{index}]"
        _check_mapping(entry, entry_path, _RESOURCE_KEYS, _RESOURCE_UNSUPPORTED)
        for nested in ("any_of", "ordered"):
            if nested in entry:
                _fail(_key_path(entry_path, nested), "any_of / ordered cannot be nested", accepted=accepted)
        out.append(Resources(**{**base, **_resource_fields(entry, entry_path)}))
    return tuple(out)


def parse_resources(value: Mapping[str, Any] | Resources | None, path: str = "resources") -> Resources:
    """Build a validated :class:`Resources` from a SkyPilot ``resources:`` mapping.

    :param value: the mapping as loaded from YAML (or given to an operator); ``None``
        means "no requirements". An existing :class:`Resources` is returned unchanged.
    :param path: where the mapping sits in the task, used in error messages.
    :returns: the parsed resources; ``any_of``/``ordered`` entries are already merged
        with the fields given beside them.
    :raises SkyConfigError: on any invalid key or value.
    """
    if isinstance(value, Resources):
        return value
    if value is None:
        return Resources()
    try:
        _check_mapping(value, path, _RESOURCE_KEYS, _RESOURCE_UNSUPPORTED)
        base = _resource_fields(value, path)
        has_any_of = value.get("any_of") is not None
        has_ordered = value.get("ordered") is not None
        if has_any_of and has_ordered:
            _fail(path, "give either any_of or ordered, not both")
        alternatives: dict[str, Any] = {}
        if has_any_of:
            alternatives["any_of"] = _parse_alternatives(value["any_of"], _key_path(path, "any_of"), base)
        if has_ordered:
            alternatives["ordered"] = _parse_alternatives(value["ordered"], _key_path(path, "ordered"), base)
        return Resources(**base, **alternatives)
    except RecursionError:
        raise SkyConfigError(f"{path}: value is nested too deeply") from None


# ---------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileMount:
    """What to copy to one remote path: a local path or a bucket URL (``s3://``, ``gs://``)."""

    source: str
    kind: str  # "local" | "bucket"
    mode: str = "COPY"


def _parse_source(value: Any, path: str) -> FileMount:
    if not isinstance(value, str) or not value.strip():
        if isinstance(value, list | tuple):
            _fail(path, "a list of sources is not supported yet", value, _ACCEPTED_FILE_MOUNT)
        _fail(path, "source must be a non-empty string", value, _ACCEPTED_FILE_MOUNT)
    source = value.strip()
    if "\x00" in source:
        _fail(path, "source must not contain NUL", value, _ACCEPTED_FILE_MOUNT)
    match = _URL_SCHEME_RE.match(source)
    if match is None:
        return FileMount(source, "local")
    scheme = match["scheme"].lower()
    if scheme in _UNSUPPORTED_SCHEMES:
        _fail(
            path,
            f"{scheme}:// sources are not supported yet",
            value,
            "s3://, gs:// (or gcs://), a local path",
        )
    if scheme not in _BUCKET_SCHEMES:
        _fail(path, f"unknown URL scheme {scheme}://", value, "s3://, gs:// (or gcs://), a local path")
    rest = source[match.end() :]
    if not rest.split("/", 1)[0]:
        _fail(path, "bucket URL has no bucket name", value, "s3://bucket/path, gs://bucket/path")
    return FileMount(f"{_BUCKET_SCHEMES[scheme]}://{rest}", "bucket")


def _parse_file_mount(value: Any, path: str) -> FileMount:
    if not isinstance(value, Mapping):
        return _parse_source(value, path)
    _check_mapping(value, path, _FILE_MOUNT_KEYS, _FILE_MOUNT_UNSUPPORTED)
    mode = value.get("mode")
    if mode is not None:
        if not isinstance(mode, str):
            _fail(_key_path(path, "mode"), "must be a string", mode, "COPY")
        normal = mode.strip().upper()
        if normal in ("MOUNT", "MOUNT_CACHED"):
            _fail(_key_path(path, "mode"), f"mode {normal} is not supported yet; use COPY", mode, "COPY")
        if normal != "COPY":
            _fail(_key_path(path, "mode"), "unknown mode", mode, "COPY")
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        _fail(_key_path(path, "name"), "must be a non-empty string", name, "a bucket name")
    if value.get("source") is None:
        if name is not None:
            _fail(
                path,
                "creating a bucket by name is not supported yet; give source",
                value,
                _ACCEPTED_FILE_MOUNT,
            )
        _fail(path, "source is required", value, _ACCEPTED_FILE_MOUNT)
    # ``name`` only names the intermediate bucket in SkyPilot; we copy the source directly.
    return _parse_source(value["source"], _key_path(path, "source"))


def _parse_file_mounts(value: Any, path: str) -> dict[str, FileMount]:
    accepted = "a mapping of remote path (absolute or ~/...) to a source"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(path, "must be a mapping", value, accepted)
    mounts: dict[str, FileMount] = {}
    for remote, item in value.items():
        item_path = _key_path(path, remote)
        if not isinstance(remote, str):
            _fail(item_path, "remote path must be a string", remote, accepted)
        if not (remote.startswith("/") or remote.startswith("~/")) or "\x00" in remote:
            _fail(item_path, "remote path must be absolute or start with ~/", remote, accepted)
        mounts[str(remote)] = _parse_file_mount(item, item_path)
    return mounts


def _parse_env_name(name: Any, path: str) -> str:
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        _fail(_key_path(path, name), "invalid variable name", name, "names matching [A-Za-z_][A-Za-z0-9_]*")
    return str(name)


def _parse_env_value(value: Any, path: str) -> str | None:
    if value is None:
        return None
    # SkyPilot stringifies with str(), so booleans become "True" / "False".
    text = _scalar_str(value, path, _ACCEPTED_ENV_VALUE, "python")
    if "\x00" in text:
        _fail(path, "must not contain NUL", value, _ACCEPTED_ENV_VALUE)
    return text


def _parse_envs(value: Any, path: str) -> dict[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(path, "must be a mapping", value, "a mapping of NAME to " + _ACCEPTED_ENV_VALUE)
    return {_parse_env_name(k, path): _parse_env_value(v, _key_path(path, k)) for k, v in value.items()}


def _parse_num_nodes(value: Any, path: str) -> int:
    if value is None:
        return 1
    if not _is_int(value) or int(value) < 1:
        _fail(path, "must be a positive whole number", value, "1, 2, ...")
    return int(value)


def _parse_workdir(value: Any, path: str) -> str | None:
    if isinstance(value, Mapping):
        _fail(path, "a git workdir ({url: ..., ref: ...}) is not supported yet", value, "a local directory path")
    return _optional_str(value, path, "a local directory path")


def _parse_command(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        _fail(path, "must be a string of shell commands", value, "a string (use | for several lines)")
    return value if value is None else str(value)


def _load_yaml(text: str, origin: str) -> Any:
    import yaml  # deferred: importing the core must stay cheap

    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SkyConfigError(f"{origin}: invalid YAML{where}: {exc.problem or exc}") from None
    except RecursionError:
        raise SkyConfigError(f"{origin}: YAML is nested too deeply") from None
    except Exception as exc:  # PyYAML constructors raise ValueError etc. for e.g. bad dates
        raise SkyConfigError(f"{origin}: invalid YAML: {_show(str(exc))}") from None
    if len(documents) > 1:
        raise SkyConfigError(f"{origin}: several YAML documents (pipelines) are not supported yet")
    return documents[0] if documents else None


def _read_source(source: Any) -> tuple[Any, str]:
    """Return (loaded value, origin for messages) for a path, YAML text, bytes or mapping."""
    if isinstance(source, Mapping):
        return source, "task"
    if isinstance(source, bytes):
        try:
            return _load_yaml(source.decode("utf-8"), "task YAML"), "task YAML"
        except UnicodeDecodeError:
            raise SkyConfigError("task YAML: not valid UTF-8") from None
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source and _looks_like_path(source)):
        try:
            filename = os.path.expanduser(os.fspath(source))
            with open(filename, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, ValueError, TypeError) as exc:
            raise SkyConfigError(f"task YAML file {_show(source)}: cannot read it ({exc})") from None
        return _load_yaml(text, str(filename)), str(filename)
    if isinstance(source, str):
        return _load_yaml(source, "task YAML"), "task YAML"
    raise SkyConfigError(f"task: expected a path, YAML text or a mapping (got {_show(source)})")


def _looks_like_path(text: str) -> bool:
    try:
        if os.path.isfile(os.path.expanduser(text)):
            return True
    except (OSError, ValueError):
        return False
    # A missing "x.yaml" should say "file not found", but one-line YAML such as
    # "{run: cat a.yaml}" or "run: cat a.yaml" ends the same way and must stay text.
    return text.strip().lower().endswith((".yaml", ".yml")) and not _YAML_TEXT_HINT.search(text)


@dataclass(frozen=True, repr=False)
class TaskSpec:
    """A parsed task: what to run, where, and with which environment.

    ``envs`` and ``secrets`` map names to values; a ``None`` value means the value is
    required and must be given at launch (see :meth:`with_envs`). Secrets never
    appear in :func:`repr`.
    """

    name: str | None = None
    workdir: str | None = None
    num_nodes: int = 1
    resources: Resources = field(default_factory=Resources)
    envs: dict[str, str | None] = field(default_factory=dict)
    secrets: dict[str, str | None] = field(default_factory=dict)
    file_mounts: dict[str, FileMount] = field(default_factory=dict)
    setup: str | None = None
    run: str | None = None

    def __hash__(self) -> int:  # dict fields make the generated hash unusable
        return hash(repr(self))

    def __repr__(self) -> str:
        masked = {k: (None if v is None else "***") for k, v in self.secrets.items()}
        return (
            f"TaskSpec(name={self.name!r}, workdir={self.workdir!r}, num_nodes={self.num_nodes!r}, "
            f"resources={self.resources!r}, envs={self.envs!r}, secrets={masked!r}, "
            f"file_mounts={self.file_mounts!r}, setup={self.setup!r}, run={self.run!r})"
        )

    @classmethod
    def from_yaml(cls, source: str | os.PathLike[str] | bytes | Mapping[str, Any]) -> TaskSpec:
        """Parse a task from a YAML file, YAML text or an already-loaded mapping.

        :param source: a path (``os.PathLike``, or a string naming an existing file or
            ending in ``.yaml``/``.yml``), YAML text, or a mapping. An empty YAML
            document is an empty task, as in SkyPilot.
        :raises SkyConfigError: on unreadable files, YAML syntax errors and invalid fields.
        """
        loaded, origin = _read_source(source)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise SkyConfigError(f"{origin}: the top level must be a mapping of task keys (got {_show(loaded)})")
        return cls.from_dict(loaded)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        """Parse a task from a mapping in the task-YAML form.

        :param d: the mapping, e.g. the result of ``yaml.safe_load``.
        :raises SkyConfigError: on any invalid key or value.
        """
        try:
            _check_mapping(d, "", _TASK_KEYS, _TASK_UNSUPPORTED)
            envs = _parse_envs(d.get("envs"), "envs")
            secrets = _parse_envs(d.get("secrets"), "secrets")
            both = [name for name in secrets if name in envs]
            if both:
                _fail(f"secrets.{both[0]}", "is also defined in envs", accepted="each name in envs or secrets")
            return cls(
                name=_optional_str(d.get("name"), "name"),
                workdir=_parse_workdir(d.get("workdir"), "workdir"),
                num_nodes=_parse_num_nodes(d.get("num_nodes"), "num_nodes"),
                resources=parse_resources(d.get("resources"), "resources"),
                envs=envs,
                secrets=secrets,
                file_mounts=_parse_file_mounts(d.get("file_mounts"), "file_mounts"),
                setup=_parse_command(d.get("setup"), "setup"),
                run=_parse_command(d.get("run"), "run"),
            )
        except RecursionError:
            raise SkyConfigError("task: value is nested too deeply") from None

    def to_dict(self, mask_secrets: bool = False) -> dict[str, Any]:
        """The task in YAML form; ``TaskSpec.from_dict(spec.to_dict()) == spec``.

        :param mask_secrets: replace secret values with ``"***"`` (for display; the
            result then no longer round-trips).
        """
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.workdir is not None:
            out["workdir"] = self.workdir
        out["num_nodes"] = self.num_nodes
        resources = self.resources.to_dict()
        if resources:
            out["resources"] = resources
        if self.envs:
            out["envs"] = dict(self.envs)
        if self.secrets:
            out["secrets"] = {k: (None if v is None else "***" if mask_secrets else v) for k, v in self.secrets.items()}
        if self.file_mounts:
            # COPY is the only mode, so the bare source is the complete YAML form.
            out["file_mounts"] = {remote: mount.source for remote, mount in self.file_mounts.items()}
        if self.setup is not None:
            out["setup"] = self.setup
        if self.run is not None:
            out["run"] = self.run
        return out

    def missing_envs(self) -> list[str]:
        """Names of envs and secrets that still have no value (``None``), envs first."""
        return [k for k, v in self.envs.items() if v is None] + [k for k, v in self.secrets.items() if v is None]

    def secret_values(self) -> list[str]:
        """The non-empty secret values, longest first, for masking them in logs."""
        return sorted({v for v in self.secrets.values() if v}, key=len, reverse=True)

    def with_envs(self, overrides: Mapping[str, Any] | None, require_all: bool = True) -> TaskSpec:
        """Return a copy with env/secret values filled in or overridden.

        :param overrides: name -> value (string, number or boolean, stringified like
            ``envs``). A name declared in ``secrets`` sets that secret; any other name
            sets (or adds) an env.
        :param require_all: raise if any env or secret is still missing afterwards.
        :raises SkyConfigError: on a bad name or value, or (with ``require_all``)
            listing every still-missing name.
        """
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, Mapping):
            _fail("env overrides", "must be a mapping", overrides, "a mapping of NAME to a value")
        envs = dict(self.envs)
        secrets = dict(self.secrets)
        for key, raw in overrides.items():
            name = _parse_env_name(key, "env overrides")
            if raw is None:
                _fail(_key_path("env overrides", name), "must have a value", raw, "a string, number or boolean")
            value = _parse_env_value(raw, _key_path("env overrides", name))
            (secrets if name in secrets else envs)[name] = value
        spec = dataclasses.replace(self, envs=envs, secrets=secrets)
        missing = spec.missing_envs()
        if require_all and missing:
            raise SkyConfigError("required envs/secrets have no value: " + ", ".join(missing) + "; give them at launch")
        return spec
