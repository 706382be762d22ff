"""Typed resource requests: what a task asks of each node.

These are plain frozen dataclasses, the shared contract between the spec parser
(:mod:`airflow_provider_sky.core.spec`, which builds them from YAML) and the
optimizer and clouds (which consume them). They hold already-validated,
normalised values; constructing one with bad values directly is a programming
error, not user input, so only the parser validates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _number(value: float) -> str:
    # ``:g`` keeps only 6 significant digits; fall back to repr so that str() round-trips.
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


@dataclass(frozen=True)
class Amount:
    """A numeric request that is either exact (``4``) or a lower bound (``4+``).

    Memory amounts are in GiB.
    """

    value: float
    at_least: bool = False

    def satisfied_by(self, offered: float) -> bool:
        if self.at_least:
            return offered >= self.value
        return abs(offered - self.value) < 1e-9

    def __str__(self) -> str:
        number = _number(self.value)
        return f"{number}+" if self.at_least else number


@dataclass(frozen=True)
class Accelerator:
    """One accelerator kind and how many of it per node (fractions allowed, e.g. 0.5)."""

    name: str
    count: float = 1.0

    def __str__(self) -> str:
        return f"{self.name}:{_number(self.count)}"


@dataclass(frozen=True)
class Autostop:
    """Stop (or tear down, when ``down``) the cluster after ``idle_minutes`` without jobs."""

    idle_minutes: int
    down: bool = False


@dataclass(frozen=True)
class Resources:
    """What one node of a cluster needs.

    ``accelerators`` holds zero, one or several choices; with several,
    ``accelerators_ordered`` says whether the user's order is a preference
    (YAML list) or whether any is fine and the cheapest wins (YAML set / dict).
    ``any_of`` and ``ordered`` hold alternative resource requests (each already
    merged with the fields given beside them); at most one of the two is set.
    Use :meth:`candidates` to get the flat list of concrete requests.
    """

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    cpus: Amount | None = None
    memory: Amount | None = None
    accelerators: tuple[Accelerator, ...] = ()
    accelerators_ordered: bool = False
    use_spot: bool = False
    disk_size: int | None = None
    image_id: str | dict[str, str] | None = None
    ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    autostop: Autostop | None = None
    max_hourly_cost: float | None = None
    any_of: tuple[Resources, ...] = ()
    ordered: tuple[Resources, ...] = ()

    def __hash__(self) -> int:  # dict fields make the generated hash unusable
        return hash(repr(self))

    @property
    def accelerator(self) -> Accelerator | None:
        """The single accelerator of a concrete request (None when none or several)."""
        return self.accelerators[0] if len(self.accelerators) == 1 else None

    def candidates(self) -> tuple[list[Resources], bool]:
        """Expand alternatives into concrete requests.

        Returns ``(requests, ordered)``: each request has no ``any_of``/``ordered``
        and at most one accelerator; ``ordered`` is True when the user's order is
        binding (``ordered:`` or an accelerator list), False when the optimizer
        may reorder them by price.
        """
        if self.ordered:
            alternatives, ordered = list(self.ordered), True
        elif self.any_of:
            alternatives, ordered = list(self.any_of), False
        else:
            alternatives, ordered = [self], len(self.accelerators) > 1 and self.accelerators_ordered
        flat: list[Resources] = []
        for alt in alternatives:
            alt = dataclasses.replace(alt, any_of=(), ordered=())
            if len(alt.accelerators) <= 1:
                flat.append(alt)
                continue
            for acc in alt.accelerators:
                flat.append(dataclasses.replace(alt, accelerators=(acc,), accelerators_ordered=False))
        return flat, ordered

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict in the task-YAML form; parsing it gives an equal object."""
        out: dict[str, Any] = {}
        if self.cloud is not None:
            out["cloud"] = self.cloud
        if self.region is not None:
            out["region"] = self.region
        if self.zone is not None:
            out["zone"] = self.zone
        if self.instance_type is not None:
            out["instance_type"] = self.instance_type
        if self.cpus is not None:
            out["cpus"] = str(self.cpus)
        if self.memory is not None:
            out["memory"] = str(self.memory)
        if self.accelerators:
            if len(self.accelerators) == 1:
                out["accelerators"] = str(self.accelerators[0])
            elif self.accelerators_ordered:
                out["accelerators"] = [str(a) for a in self.accelerators]
            else:
                out["accelerators"] = {a.name: a.count for a in self.accelerators}
        if self.use_spot:
            out["use_spot"] = True
        if self.disk_size is not None:
            out["disk_size"] = self.disk_size
        if self.image_id is not None:
            out["image_id"] = dict(self.image_id) if isinstance(self.image_id, dict) else self.image_id
        if self.ports:
            out["ports"] = list(self.ports)
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.autostop is not None:
            out["autostop"] = {"idle_minutes": self.autostop.idle_minutes, "down": self.autostop.down}
        if self.max_hourly_cost is not None:
            out["max_hourly_cost"] = self.max_hourly_cost
        if self.any_of:
            out["any_of"] = [_alternative_dict(r, out) for r in self.any_of]
        if self.ordered:
            out["ordered"] = [_alternative_dict(r, out) for r in self.ordered]
        return out


def _alternative_dict(alternative: Resources, parent: dict[str, Any]) -> dict[str, Any]:
    # The parser merges each alternative over the fields beside it, so a field that the
    # alternative resets to its default (e.g. use_spot false) must be written as null.
    out = alternative.to_dict()
    for key in parent:
        if key not in out and key not in ("any_of", "ordered"):
            out[key] = None
    return out
