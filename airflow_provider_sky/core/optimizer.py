"""Turn a resource request into a cheapest-first failover plan over the instance catalog.

:func:`plan` returns :class:`Candidate` offers, cheapest first. The launch path
tries them in that order: each candidate's zones one by one (cheapest zone
first), then the next candidate (usually another region), across clouds.

Rules, each chosen so that the first candidate is what a person reading the
CSVs would pick:

**Matching.** ``instance_type`` pins an instance; ``accelerators`` match by name
(case-insensitive) and exact per-instance count (fractions such as AWS
``L4:0.125`` included); ``cpus``/``memory`` are exact or at-least
(:class:`~airflow_provider_sky.core.resources.Amount`); ``cloud``/``region``/
``zone`` pin where to look. A request without accelerators never gets an
instance that carries some, unless pinned by ``instance_type``.

**Default instance.** When nothing is asked (no cpus, memory, accelerators or
instance type) the request becomes ``cpus: 8+, memory: 32+`` (SkyPilot's default
of 8 vCPUs with 4 GiB each) on x86-64, burstable and shared-core types excluded
(AWS ``t*``, Azure ``Standard_B*``, GCP ``e2-micro/small/medium``, ``f1-micro``,
``g1-small``): a task that runs for hours should not run out of CPU credits.

**Legacy sizes.** Azure's ``Basic_*`` sizes (retired) and ``*_Promo`` sizes
(legacy promotional prices, a fraction of the regular ones) are still listed
upstream but are not something a new cluster should rely on; they are offered
only when pinned by ``instance_type``.

**Architecture.** Requests without accelerators get x86-64 instances only, since
images and setup scripts assume it; arm64 instances are offered when pinned by
``instance_type`` or when the accelerator exists only there (``T4g``, GH200).
Mac instances (AWS ``*_mac``, dedicated hosts billed per day) only when pinned.

**GCP accelerators.** GCP lists a GPU or TPU as its own row whose price is added
to a host VM in the same zone; a candidate never mixes regions or zones. Allowed
hosts: ``a2-highgpu-{1,2,4,8}g``/``a2-megagpu-16g`` for A100,
``a2-ultragpu-*`` for A100-80GB, ``a3-highgpu-*`` for H100, ``a3-megagpu-8g``
for H100-MEGA, ``a3-ultragpu-8g`` for H200, ``a4-highgpu-8g`` for B200,
``g2-standard-*`` for L4 (by count), and for T4/V100/P100/P4 the
``n1-standard/highmem/highcpu`` types within GCP's per-count vCPU and memory
limits. In each zone the host is the cheapest allowed one that meets the
requested cpus/memory; when neither is given, an ``n1`` host must have at least
4 vCPUs and 16 GiB per GPU (as on the other clouds' GPU instances). A TPU runs
on a TPU VM (``instance_type`` ``"TPU-VM"``) with no host price and no published
vCPU/memory, so a TPU request that also asks for cpus or memory cannot match.

**Prices.** Prices are per node-hour in USD. An empty price, a ``0.0`` price (GCP
lists ``a4-highgpu-8g`` at 0.0: unknown, not free) and the ``700.0`` placeholder
on TPU rows count as unknown. An offer is only planned on a market whose price
is known: on demand needs ``Price``, ``use_spot`` needs ``SpotPrice``, so clouds
without spot (Lambda) drop out of spot plans. ``max_hourly_cost`` caps the
per-node price used for ranking. Duplicate rows are collapsed when the catalog
is built.

**Zones.** AWS lists zone IDs (``use1-az2``); a zone pin in that form filters
them, while a zone *name* (``us-east-1a``, mapped to IDs differently per
account) keeps the region's prices and is handed to the launcher as is. Azure
and Lambda catalogs have no zones, so a zone pin excludes them.

**Errors.** Constraints are applied as named steps. The step that empties the
list is named in the :class:`SkyConfigError`, with the cheapest near-miss: the
best offer meeting every other constraint that can still be met.

**Ranking.** Offers of one instance type (or GCP host + accelerator) in one
region form a candidate; its price is its cheapest zone's. Candidates are sorted
by ranking price (spot with ``use_spot``), then cloud, region and instance type.
``any_of`` and several accelerators in set/dict form are merged and sorted;
``ordered`` and accelerator lists keep the user's order, each alternative's
candidates sorted within it, repeats dropped.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_sky.core import catalog
from airflow_provider_sky.core.errors import SkyConfigError
from airflow_provider_sky.core.resources import Amount, Resources

if TYPE_CHECKING:
    from airflow_provider_sky.core.catalog.compact import CompactCloud

__all__ = ["DEFAULT_CPUS", "DEFAULT_MEMORY", "Candidate", "plan"]

DEFAULT_CPUS = Amount(8, at_least=True)
DEFAULT_MEMORY = Amount(32, at_least=True)
TPU_VM = "TPU-VM"
ALL_CLOUDS = ("local", "ssh", "aws", "gcp", "azure", "kubernetes", "lambda")
_CLOUD_ORDER = {c: i for i, c in enumerate(catalog.CLOUDS)}

# GCP accelerator -> count -> host instance types GCP lets carry it (fixed shapes).
_GCP_FIXED_HOSTS: dict[str, dict[float, tuple[str, ...]]] = {
    "A100": {1: ("a2-highgpu-1g",), 2: ("a2-highgpu-2g",), 4: ("a2-highgpu-4g",), 8: ("a2-highgpu-8g",),
             16: ("a2-megagpu-16g",)},
    "A100-80GB": {1: ("a2-ultragpu-1g",), 2: ("a2-ultragpu-2g",), 4: ("a2-ultragpu-4g",),
                  8: ("a2-ultragpu-8g",)},
    "H100": {1: ("a3-highgpu-1g",), 2: ("a3-highgpu-2g",), 4: ("a3-highgpu-4g",), 8: ("a3-highgpu-8g",)},
    "H100-MEGA": {8: ("a3-megagpu-8g",)},
    "H200": {8: ("a3-ultragpu-8g",)},
    "B200": {8: ("a4-highgpu-8g",)},
    "L4": {1: ("g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32"),
           2: ("g2-standard-24",), 4: ("g2-standard-48",), 8: ("g2-standard-96",)},
}
_GCP_HOST_TO_ACC = {host: (acc, float(count)) for acc, by_count in _GCP_FIXED_HOSTS.items()
                    for count, hosts in by_count.items() for host in hosts}
# GPUs attached to n1 hosts: count -> (max vCPUs, max memory GiB), from GCP's GPU documentation.
_GCP_N1_LIMITS: dict[str, dict[float, tuple[float, float]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
}
_N1_HOST = re.compile(r"^n1-(standard|highmem|highcpu)-\d+$")
_N1_CPUS_PER_GPU = 4.0
_N1_MEM_PER_GPU = 16.0
_GCP_SHARED_CORE = frozenset({"e2-micro", "e2-small", "e2-medium", "f1-micro", "g1-small"})
_AWS_BURSTABLE = re.compile(r"^t\d")
_AZURE_RETIRED = re.compile(r"^Basic_|_Promo$")
_AWS_ZONE_NAME = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)[a-z]$")
_PRICE_DIGITS = 8


@dataclass(frozen=True)
class Candidate:
    """One place to try: an instance type (with its accelerators) in one region of one cloud.

    Prices are USD per node-hour, the lowest among ``zones``; ``None`` means the
    catalog does not know it. ``price`` is the one used for ranking:
    ``spot_price`` when ``use_spot``, else ``on_demand_price``. ``zones`` are the
    zones with a known price on that market, cheapest first (empty for clouds
    whose catalog has no zones: Azure, Lambda). ``alternative`` indexes the
    concrete request this came from in ``Resources.candidates()[0]``.
    """

    cloud: str
    region: str
    zones: tuple[str, ...]
    instance_type: str
    accelerator: str | None
    accelerator_count: float | None
    vcpus: float | None
    memory_gib: float | None
    arch: str
    on_demand_price: float | None
    spot_price: float | None
    use_spot: bool
    price: float
    num_nodes: int
    image_id: str | None
    alternative: int

    @property
    def cluster_price(self) -> float:
        """Ranking price for all nodes, per hour."""
        return round(self.price * self.num_nodes, _PRICE_DIGITS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field plus ``cluster_price``."""
        return {
            "cloud": self.cloud,
            "region": self.region,
            "zones": list(self.zones),
            "instance_type": self.instance_type,
            "accelerator": self.accelerator,
            "accelerator_count": self.accelerator_count,
            "vcpus": self.vcpus,
            "memory_gib": self.memory_gib,
            "arch": self.arch,
            "on_demand_price": self.on_demand_price,
            "spot_price": self.spot_price,
            "use_spot": self.use_spot,
            "price": self.price,
            "num_nodes": self.num_nodes,
            "cluster_price": self.cluster_price,
            "image_id": self.image_id,
            "alternative": self.alternative,
        }


_Zone = tuple[str, float | None, float | None]  # (zone, on-demand, spot); zone "" when the cloud has none
_Ranked = tuple[float | None, float | None, float | None, tuple[str, ...]]
_Step = Callable[[list["_Offer"]], list["_Offer"]]


def _new_candidate(cloud: str, region: str, zones: tuple[str, ...], instance_type: str,
                   accelerator: str | None, accelerator_count: float | None, vcpus: float | None,
                   memory_gib: float | None, arch: str, on_demand_price: float | None,
                   spot_price: float | None, use_spot: bool, price: float, num_nodes: int,
                   image_id: str | None, alternative: int) -> Candidate:
    # A frozen dataclass's __init__ routes every field through object.__setattr__, which
    # is over half of plan()'s time for a GPU request; filling __dict__ directly builds
    # the identical object (same fields, equality and hash) at a third of the cost.
    c = object.__new__(Candidate)
    c.__dict__.update(
        cloud=cloud, region=region, zones=zones, instance_type=instance_type, accelerator=accelerator,
        accelerator_count=accelerator_count, vcpus=vcpus, memory_gib=memory_gib, arch=arch,
        on_demand_price=on_demand_price, spot_price=spot_price, use_spot=use_spot, price=price,
        num_nodes=num_nodes, image_id=image_id, alternative=alternative,
    )
    return c


class _Offer(NamedTuple):
    """An instance (GCP: host + accelerator) in one region, with per-zone known prices.

    ``by_od``/``by_spot`` are precomputed for each market: (ranking price,
    on-demand, spot) of the cheapest zone with a known price, and the zones with
    a known price, cheapest first; all None/empty when the market has no price.
    """

    cloud: str
    itype: str
    acc: str | None
    acc_count: float | None
    vcpus: float | None
    mem: float | None
    arch: str
    region: str
    zones: tuple[_Zone, ...]
    by_od: _Ranked
    by_spot: _Ranked


def _ranked(zones: tuple[_Zone, ...], col: int) -> _Ranked:
    known = [(p, z) for z in zones for p in ((z[2] if col == 2 else z[1]),) if p is not None]
    priced = sorted(known, key=lambda pz: (pz[0], pz[1][0]))
    if not priced:
        return None, None, None, ()
    # Both markets' prices are the lowest among the zones the candidate offers (those
    # priced on the ranking market), so the other market's column is never a
    # pricier zone's figure just because that zone won on the ranking market.
    od = min((z[1] for _, z in priced if z[1] is not None), default=None)
    spot = min((z[2] for _, z in priced if z[2] is not None), default=None)
    return priced[0][0], od, spot, tuple(z[0] for _, z in priced if z[0])


def _offer(cloud: str, itype: str, acc: str | None, count: float | None, vcpus: float | None,
           mem: float | None, arch: str, region: str, zones: tuple[_Zone, ...]) -> _Offer:
    return _Offer(cloud, itype, acc, count, vcpus, mem, arch, region, zones,
                  _ranked(zones, 1), _ranked(zones, 2))


def _with_zones(o: _Offer, zones: tuple[_Zone, ...]) -> _Offer:
    return o._replace(zones=zones, by_od=_ranked(zones, 1), by_spot=_ranked(zones, 2))


def _known(price: float, accelerator: str | None = None) -> float | None:
    """A catalog price, or None when it is a placeholder for "unknown" (see module docs)."""
    if math.isnan(price) or price == 0.0:
        return None
    if price == 700.0 and accelerator is not None and accelerator.startswith("tpu-"):
        return None
    return price


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a + b, _PRICE_DIGITS)


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


# ---------------------------------------------------------------- offers per cloud

def _group_offer(cat: CompactCloud, g: int) -> _Offer:
    acc = cat.acc[g] or None
    zone, price, spot = cat.zone, cat.price, cat.spot
    zones = tuple((zone[r], _known(price[r], acc), _known(spot[r], acc))
                  for r in range(cat.first_row[g], cat.first_row[g + 1]))
    return _offer(cat.cloud, cat.itype[g], acc, None if acc is None else cat.count[g],
                  _num(cat.vcpus[g]), _num(cat.mem[g]), cat.arch[g], cat.region[g], zones)


def _cached_offer(cat: CompactCloud, g: int) -> _Offer:
    # Offers depend only on the immutable catalog, so each is built once per loaded catalog.
    offer: _Offer | None = cat.memo.get(g)
    if offer is None:
        offer = cat.memo[g] = _group_offer(cat, g)
    return offer


def _gcp_host_groups(cat: CompactCloud, acc: str, count: float) -> list[int]:
    """Groups of the host types GCP allows for ``acc:count`` (all regions)."""
    fixed = _GCP_FIXED_HOSTS.get(acc)
    if fixed is not None:
        names: Iterable[str] = fixed.get(count, ())
    else:
        limits = _GCP_N1_LIMITS.get(acc, {}).get(count)
        if limits is None and acc not in _GCP_N1_LIMITS:
            limits = (96.0, 624.0)  # a GPU GCP has not documented limits for: any n1 shape
        if limits is None:
            return []
        max_cpus, max_mem = limits
        names = [n for n, (gs, _) in cat.itype_index.items()
                 if _N1_HOST.match(n) and cat.vcpus[gs] <= max_cpus and cat.mem[gs] <= max_mem]
    groups: list[int] = []
    for name in names:
        span = cat.itype_index.get(name)
        if span:
            groups.extend(range(span[0], span[1]))
    return groups


def _gcp_accelerator_offers(cat: CompactCloud, acc: str, count: float, host: str | None) -> list[_Offer]:
    """Every (allowed host, accelerator) pair in the same region, priced zone by zone."""
    key = ("gcp-accelerator", acc, count, host)
    cached: list[_Offer] | None = cat.memo.get(key)
    if cached is not None:
        return cached
    offers: list[_Offer] = []
    if acc.startswith("tpu-"):
        for g in cat.groups_for(acc, count):
            o = _cached_offer(cat, g)
            offers.append(o._replace(itype=TPU_VM, arch="x86_64"))
    else:
        hosts_by_region: dict[str, list[_Offer]] = {}
        for hg in _gcp_host_groups(cat, acc, count):
            ho = _cached_offer(cat, hg)
            if host is None or ho.itype == host:
                hosts_by_region.setdefault(ho.region, []).append(ho)
        for g in cat.groups_for(acc, count):
            ao = _cached_offer(cat, g)
            for ho in hosts_by_region.get(ao.region, ()):
                host_zones = {z: (p, s) for z, p, s in ho.zones}
                zones = tuple((z, _add(p, host_zones[z][0]), _add(s, host_zones[z][1]))
                              for z, p, s in ao.zones if z in host_zones)
                if zones:
                    offers.append(_offer("gcp", ho.itype, acc, count, ho.vcpus, ho.mem, ho.arch,
                                         ao.region, zones))
    cat.memo[key] = offers
    return offers


def _cheapest_gcp_hosts(offers: list[_Offer], use_spot: bool) -> list[_Offer]:
    """Per (accelerator, region, zone) keep only the cheapest host, then regroup zones by host."""
    buckets: set[tuple[Any, ...]] = set()
    for o in offers:
        if o.cloud == "gcp" and o.acc is not None:
            key = (o.acc, o.acc_count, o.region)
            if key in buckets:
                break
            buckets.add(key)
    else:
        return offers  # one host per region already (A100, H100...): nothing to choose
    best: dict[tuple[Any, ...], tuple[float, str, _Offer, tuple[str, float | None, float | None]]] = {}
    passthrough: list[_Offer] = []
    unpriced: list[_Offer] = []
    col = 2 if use_spot else 1
    for o in offers:
        if o.cloud != "gcp" or o.acc is None or o.itype == TPU_VM:
            passthrough.append(o)
            continue
        for z in o.zones:
            rank = z[2] if col == 2 else z[1]
            if rank is None:
                # Unpriced pairs cannot win a zone; keep them so the price step can report them.
                unpriced.append(_with_zones(o, (z,)))
                continue
            k = (o.acc, o.acc_count, o.region, z[0])
            current = best.get(k)
            if current is None or (rank, o.itype) < current[:2]:
                best[k] = (rank, o.itype, o, z)
    regrouped: dict[tuple[Any, ...], tuple[_Offer, list[tuple[str, float | None, float | None]]]] = {}
    for _, _, o, z in best.values():
        entry = regrouped.setdefault((o.acc, o.acc_count, o.region, o.itype), (o, []))
        entry[1].append(z)
    return passthrough + unpriced + [_with_zones(o, tuple(zs)) for o, zs in regrouped.values()]


def _base_offers(cat: CompactCloud, req: Resources, acc: str | None, count: float | None,
                 narrow: bool = False) -> list[_Offer]:
    """Offers matching the accelerator / instance type of ``req`` on one cloud, before other filters."""
    itype = req.instance_type
    if cat.cloud == "gcp":
        if acc is None and itype in _GCP_HOST_TO_ACC:
            acc, count = _GCP_HOST_TO_ACC[itype]  # a pinned a2/a3/g2 host comes with its GPUs
        if acc is not None and count is not None and (acc in cat.acc_index):
            if acc.startswith("tpu-"):
                # TPUs run on their own VM: no other instance type can carry one.
                return _gcp_accelerator_offers(cat, acc, count, None) if itype in (None, TPU_VM) else []
            return _gcp_accelerator_offers(cat, acc, count, itype)
    if itype is not None:
        span = cat.itype_index.get(itype)
        if not span:
            return []
        offers = [_cached_offer(cat, g) for g in range(span[0], span[1])]
        if acc is not None:
            offers = [o for o in offers if o.acc == acc and o.acc_count is not None and count is not None
                      and abs(o.acc_count - count) < 1e-9]
        return offers
    if acc is None:
        groups = _narrowed_plain_groups(cat, req) if narrow else cat.plain_groups
        return [_cached_offer(cat, g) for g in groups]
    return [_cached_offer(cat, g) for g in cat.groups_for(acc, count)]


def _narrowed_plain_groups(cat: CompactCloud, req: Resources) -> list[int]:
    """Accelerator-less groups that can pass the shape, arch and region steps.

    A CPU request spans ~30k groups; building offers only for these makes it
    several times faster. The caller falls back to all groups when no cloud has
    any, so that the steps themselves can say which constraint emptied the list.
    """
    groups = cat.plain_groups
    nothing_asked = req.cpus is None and req.memory is None
    cpus = DEFAULT_CPUS if nothing_asked else req.cpus
    memory = DEFAULT_MEMORY if nothing_asked else req.memory
    vcpus, mem, arch, region = cat.vcpus, cat.mem, cat.arch, cat.region
    narrowed = [
        g for g in groups
        if arch[g] == "x86_64"
        and (cpus is None or cpus.satisfied_by(vcpus[g]))
        and (memory is None or memory.satisfied_by(mem[g]))
        and (req.region is None or region[g] == req.region)
    ]
    return narrowed


# ---------------------------------------------------------------- filters

def _n1_default_ok(o: _Offer) -> bool:
    gpus = o.acc_count or 1.0
    return (o.vcpus or 0.0) >= _N1_CPUS_PER_GPU * gpus and (o.mem or 0.0) >= _N1_MEM_PER_GPU * gpus


def _burstable(cloud: str, itype: str) -> bool:
    if cloud == "aws":
        return bool(_AWS_BURSTABLE.match(itype))
    if cloud == "azure":
        return itype.startswith("Standard_B")
    if cloud == "gcp":
        return itype in _GCP_SHARED_CORE
    return False


def _zone_filter(o: _Offer, zone: str) -> _Offer | None:
    """Keep the zones matching a zone pin. AWS lists zone IDs (use1-az2) whose mapping to
    names (us-east-1a) differs per account, so a name pin keeps its region's prices and
    hands the name itself to the launcher."""
    if not o.zones or not o.zones[0][0]:
        return None  # this cloud's catalog has no zones (Azure, Lambda)
    kept = tuple(z for z in o.zones if z[0] == zone)
    if kept:
        return _with_zones(o, kept)
    if o.cloud == "aws":
        m = _AWS_ZONE_NAME.match(zone)
        if m and m.group(1) == o.region:
            best = min(o.zones, key=lambda z: (z[1] is None, z[1] or 0.0))
            spot = min((z[2] for z in o.zones if z[2] is not None), default=None)
            return _with_zones(o, ((zone, best[1], spot),))
    return None


def _region_of_zone(cloud: str, zone: str) -> str | None:
    if cloud == "gcp":
        return zone.rsplit("-", 1)[0]
    if cloud == "aws":
        m = _AWS_ZONE_NAME.match(zone)
        return m.group(1) if m else None
    return None


def _image_for(req: Resources, region: str) -> str | None:
    if isinstance(req.image_id, dict):
        return req.image_id.get(region)
    return req.image_id


def _image_ok(req: Resources, o: _Offer) -> bool:
    image = req.image_id
    if image is None:
        return True
    if isinstance(image, dict):
        return o.region in image
    if image.startswith("skypilot:"):
        regions = catalog.image_regions(o.cloud, image)
        return regions is None or o.region in regions
    return True


def _rank(o: _Offer, use_spot: bool) -> _Ranked:
    """(ranking price, on-demand, spot) of the cheapest known zone, and zones cheapest first."""
    return o.by_spot if use_spot else o.by_od


def _any_price(o: _Offer) -> float | None:
    known = [p for z in o.zones for p in (z[1], z[2]) if p is not None]
    return min(known) if known else None


def _describe(o: _Offer, use_spot: bool) -> str:
    """``aws p4d.24xlarge (A100:8) in us-east-1 at $21.96/h on demand``, for error messages."""
    acc = f" ({o.acc}:{o.acc_count:g})" if o.acc else ""
    od = min((z[1] for z in o.zones if z[1] is not None), default=None)
    spot = min((z[2] for z in o.zones if z[2] is not None), default=None)
    first, second = ((spot, "spot"), (od, "on demand")) if use_spot else ((od, "on demand"), (spot, "spot"))
    shown = first if first[0] is not None else second
    cost = f" at ${shown[0]:.4g}/h {shown[1]}" if shown[0] is not None else " (price unknown)"
    return f"{o.cloud} {o.itype}{acc} in {o.region}{cost}"


def _cheapest(offers: Sequence[_Offer], use_spot: bool) -> _Offer | None:
    def key(o: _Offer) -> tuple[bool, float]:
        p = _rank(o, use_spot)[0]
        if p is None:
            p = _any_price(o)
        return (p is None, p or 0.0)

    return min(offers, key=key) if offers else None


class _Infeasible(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- accelerator names

def _resolve_accelerator(name: str, clouds: Sequence[str]) -> str:
    lower = name.lower()
    for cloud in clouds:
        found = catalog.load(cloud).acc_by_lower.get(lower)
        if found is not None:
            return found
    for cloud in catalog.CLOUDS:
        if cloud not in clouds:
            found = catalog.load(cloud).acc_by_lower.get(lower)
            if found is not None:
                return found
    known = sorted({n for c in catalog.CLOUDS for n in catalog.load(c).acc_index})
    elsewhere = {k.lower(): (k, v) for k, v in catalog.accelerator_clouds().items()}
    if lower in elsewhere:
        real, offered = elsewhere[lower]
        raise SkyConfigError(
            f"accelerator {real!r} is offered only on {', '.join(offered)}, none of which this catalog "
            f"covers ({', '.join(catalog.CLOUDS)})"
        )
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(lower, list(by_lower), n=3, cutoff=0.5)
    hint = " or ".join(repr(by_lower[c]) for c in close)
    hint = f"; did you mean {hint}?" if close else "; run `sky-airflow show-gpus` for the list"
    raise SkyConfigError(f"unknown accelerator {name!r}{hint}")


def _check_instance_type(itype: str, clouds: Sequence[str]) -> None:
    if itype == TPU_VM:
        return
    for cloud in catalog.CLOUDS:
        if itype in catalog.load(cloud).itype_index:
            return
    names = [n for c in clouds for n in catalog.load(c).itype_index]
    close = difflib.get_close_matches(itype, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    where = ", ".join(clouds)
    raise SkyConfigError(f"unknown instance_type {itype!r} (not in the {where} catalog){hint}")


# ---------------------------------------------------------------- planning one concrete request

def _plan_one(req: Resources, clouds: Sequence[str], alternative: int, num_nodes: int) -> list[Candidate]:
    use_spot = req.use_spot
    if req.cloud is not None and req.cloud not in ALL_CLOUDS:
        raise SkyConfigError(f"unknown cloud {req.cloud!r}; expected one of {', '.join(ALL_CLOUDS)}")
    wanted = [c for c in clouds if req.cloud is None or c == req.cloud]
    if not wanted:
        if req.cloud is None:
            raise _Infeasible(f"none of the allowed clouds has a price catalog (it covers {', '.join(catalog.CLOUDS)})")
        if req.cloud not in catalog.CLOUDS:
            raise _Infeasible(f"cloud {req.cloud!r} has no price catalog (it covers {', '.join(catalog.CLOUDS)})")
        raise _Infeasible(f"cloud {req.cloud!r} is not among the clouds allowed here ({', '.join(clouds)})")
    acc_req = req.accelerator
    acc = count = None
    if acc_req is not None:
        acc = _resolve_accelerator(acc_req.name, wanted)
        count = float(acc_req.count)
    if req.instance_type is not None:
        _check_instance_type(req.instance_type, wanted)

    # 1. what exists with that accelerator / instance type, on the wanted clouds
    offers: list[_Offer] = []
    for cloud in wanted:
        offers.extend(_base_offers(catalog.load(cloud), req, acc, count, narrow=True))
    if not offers and acc is None and req.instance_type is None:
        for cloud in wanted:
            offers.extend(_base_offers(catalog.load(cloud), req, acc, count))
    if not offers:
        _explain_missing(req, acc, count, wanted, use_spot)

    # 2. every other constraint, as named steps applied in order
    nothing_asked = (req.cpus is None and req.memory is None and acc is None and req.instance_type is None)
    cpus = DEFAULT_CPUS if nothing_asked else req.cpus
    memory = DEFAULT_MEMORY if nothing_asked else req.memory
    if acc is not None and acc.startswith("tpu-") and (cpus is not None or memory is not None):
        raise _Infeasible(f"{acc} runs on a TPU VM with no published vCPU/memory, so cpus/memory cannot be met")
    steps: list[tuple[str, _Step]] = []

    def keep(label: str, test: Callable[[_Offer], bool]) -> None:
        steps.append((label, lambda offers: [o for o in offers if test(o)]))

    if cpus is not None:
        keep(f"cpus {cpus}", lambda o: o.vcpus is not None and cpus.satisfied_by(o.vcpus))
    if memory is not None:
        keep(f"memory {memory} GiB", lambda o: o.mem is not None and memory.satisfied_by(o.mem))
    if acc is not None and cpus is None and memory is None:
        keep("the default GCP n1 host size (4 vCPUs and 16 GiB per GPU)",
             lambda o: not (o.cloud == "gcp" and _N1_HOST.match(o.itype)) or _n1_default_ok(o))
    if req.instance_type is None:
        keep("current (not legacy) Azure sizes", lambda o: not (o.cloud == "azure" and _AZURE_RETIRED.search(o.itype)))
        if acc is None:
            keep("x86-64 (the default architecture)", lambda o: o.arch == "x86_64")
        else:
            keep("non-Mac instances", lambda o: not o.arch.endswith("_mac"))
        if nothing_asked:
            keep("the default (non-burstable) instance families", lambda o: not _burstable(o.cloud, o.itype))
    zone, region = req.zone, req.region
    if zone is not None and region is None:
        keep(f"zone {zone!r}", lambda o: _region_of_zone(o.cloud, zone) in (None, o.region))
    if region is not None:
        close = difflib.get_close_matches(region, sorted({o.region for o in offers}), n=1)
        did = f" (did you mean {close[0]!r}?)" if close and close[0] != region else ""
        keep(f"region {region!r}{did}", lambda o: o.region == region)
    if zone is not None:
        steps.append((f"zone {zone!r}", lambda offers: [z for o in offers if (z := _zone_filter(o, zone))]))
    if req.image_id is not None:
        keep("the regions of image_id", lambda o: _image_ok(req, o))
    if acc is not None:
        steps.append(("", lambda offers: _cheapest_gcp_hosts(offers, use_spot)))
    market = "spot" if use_spot else "on-demand"
    keep(f"a known {market} price (no {market} price in the catalog)", lambda o: _rank(o, use_spot)[0] is not None)
    cap = req.max_hourly_cost
    if cap is not None:
        keep(f"max_hourly_cost ${cap:g}/h", lambda o: (_rank(o, use_spot)[0] or 0.0) <= cap + 1e-12)
    offers = _apply_steps(offers, steps, use_spot)

    out = [
        _new_candidate(o.cloud, o.region, zones, o.itype, o.acc, o.acc_count, o.vcpus, o.mem, o.arch, od, spot,
                       use_spot, price, num_nodes, _image_for(req, o.region), alternative)
        for o in offers
        for price, od, spot, zones in (_rank(o, use_spot),)
        if price is not None
    ]
    out.sort(key=_sort_key)
    return out


def _apply_steps(offers: list[_Offer], steps: Sequence[tuple[str, _Step]], use_spot: bool) -> list[_Offer]:
    """Apply the steps in order. If one empties the list, fail naming it, with the cheapest
    near-miss: the best offer meeting every other step that can still be met."""
    for i, (label, step) in enumerate(steps):
        kept = step(offers)
        if kept or not offers:
            offers = kept
            continue
        rest = offers
        for _, later in steps[i + 1:]:
            rest = later(rest) or rest
        miss = _cheapest(rest, use_spot)
        hint = f"; cheapest without it: {_describe(miss, use_spot)}" if miss is not None else ""
        raise _Infeasible(f"no offering fits {label}{hint}")
    return offers


def _sort_key(c: Candidate) -> tuple[Any, ...]:
    return (c.price, _CLOUD_ORDER.get(c.cloud, 99), c.region, c.instance_type)


def _explain_missing(req: Resources, acc: str | None, count: float | None, wanted: Sequence[str],
                     use_spot: bool) -> None:
    """Nothing matched the accelerator/instance type on the wanted clouds: say why, with a near-miss."""
    where = ", ".join(wanted)
    if acc is not None and count is not None:
        counts = sorted({c for cloud in wanted for c in catalog.load(cloud).counts_for(acc)})
        if req.instance_type is not None:
            raise _Infeasible(f"instance_type {req.instance_type!r} does not carry {acc}:{count:g} on {where}")
        if counts:
            shown = ", ".join(f"{c:g}" for c in counts)
            raise _Infeasible(f"no instance on {where} has {count:g}x {acc}; counts offered: {shown}")
        others = [c for c in catalog.CLOUDS if c not in wanted]
        near: list[_Offer] = []
        for cloud in others:
            near.extend(_base_offers(catalog.load(cloud), req, acc, count))
        miss = _cheapest(near, use_spot)
        hint = f"; cheapest elsewhere: {_describe(miss, use_spot)}" if miss is not None else ""
        raise _Infeasible(f"{acc} is not offered on {where}{hint}")
    raise _Infeasible(f"instance_type {req.instance_type!r} is not offered on {where}")


# ---------------------------------------------------------------- public entry point

def plan(resources: Resources, clouds: Iterable[str] | None = None, num_nodes: int = 1) -> list[Candidate]:
    """The cheapest-first failover plan for a resource request.

    :param resources: the request, possibly with ``any_of``/``ordered`` alternatives.
    :param clouds: clouds allowed (default: every catalog cloud: aws, gcp, azure, lambda);
        clouds without a catalog (local, ssh, kubernetes) are ignored here, and a
        request pinned to one of them has no plan (their launch paths need none).
    :param num_nodes: nodes per cluster; must be a positive integer. Each
        candidate's ``cluster_price`` is its per-node ``price`` times this.
    :returns: candidates, cheapest first (or in the user's order for ``ordered``
        alternatives and accelerator lists), never empty.
    :raises SkyConfigError: an unknown accelerator, instance type or cloud (with the
        closest names), or a request nothing fits (naming the constraint that
        emptied the list and the cheapest near-miss).
    """
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise SkyConfigError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    if clouds is None:
        allowed: tuple[str, ...] = catalog.CLOUDS
    else:
        given = list(clouds)
        bad = [c for c in given if c not in ALL_CLOUDS]
        if bad:
            raise SkyConfigError(f"unknown cloud {bad[0]!r}; expected one of {', '.join(ALL_CLOUDS)}")
        allowed = tuple(c for c in catalog.CLOUDS if c in given)
    requests, ordered = resources.candidates()
    results: list[Candidate] = []
    reasons: list[str] = []
    for i, req in enumerate(requests):
        try:
            results.extend(_plan_one(req, allowed, i, num_nodes))
        except _Infeasible as exc:
            reasons.append(exc.message if len(requests) == 1 else f"alternative {i + 1} ({_label(req)}): "
                           f"{exc.message}")
    if not results:
        if len(reasons) == 1:
            raise SkyConfigError(f"no candidate for {_label(resources)}: {reasons[0]}")
        raise SkyConfigError("no alternative can be met: " + "; ".join(reasons))
    if len(requests) == 1:
        return results  # one request yields one candidate per (cloud, region, instance): nothing to merge
    if not ordered:
        results.sort(key=_sort_key)
    return _dedupe(results)


def _dedupe(cands: list[Candidate]) -> list[Candidate]:
    seen: set[tuple[Any, ...]] = set()
    out: list[Candidate] = []
    for c in cands:
        key = (c.cloud, c.region, c.instance_type, c.accelerator, c.accelerator_count, c.use_spot)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _label(req: Resources) -> str:
    parts = [f"{k}={v}" for k, v in req.to_dict().items() if k not in ("any_of", "ordered")]
    if req.any_of or req.ordered:
        parts.append(f"{len(req.any_of or req.ordered)} alternatives")
    return "{" + ", ".join(parts) + "}" if parts else "{} (default instance)"
