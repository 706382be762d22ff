"""The compact catalog format, and building it from SkyPilot's CSV catalogs.

Parsing 78k CSV rows with :mod:`csv` takes far longer than a cold CLI call may,
so each cloud's ``vms.csv`` is converted once (at packaging time, and again by
``sky-airflow catalog refresh``) into a ``<cloud>.skycat`` file that loads in a
few milliseconds:

* ``SKYCAT1\\n`` magic, then a zlib stream holding: a 4-byte little-endian
  header length, a JSON header, and the raw little-endian bytes of each column.
* Rows are deduplicated and sorted by ``(accelerator, count, instance type,
  region, zone)``; consecutive rows that share everything but the zone form a
  *group* (one instance type, or one GCP accelerator, in one region). So every
  ``(accelerator, count)`` and every instance type owns a contiguous run of
  groups, indexed in the header.
* Group columns: instance type, accelerator, count, vCPUs, memory, region, arch,
  first row. Row columns: zone, on-demand price, spot price. Strings are indices
  into one string table; missing numbers are NaN.

The compact form keeps the columns the optimizer uses (``GpuInfo`` and Azure's
``Generation`` are dropped) and keeps prices exactly as upstream has them: the
quirks (empty, ``0.0`` and ``700.0`` placeholders) are interpreted by the
optimizer, not hidden here, so the compact form can be checked against the CSVs
(:func:`rows_from_csv` vs :meth:`CompactCloud.rows`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_sky.core.errors import SkyConfigError

MAGIC = b"SKYCAT1\n"
FORMAT_VERSION = 1
NAN = float("nan")

#: Columns each cloud's ``vms.csv`` must have (by name; order and extra columns do not matter).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "aws": ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price",
            "SpotPrice", "Region", "AvailabilityZone", "Arch"),
    "gcp": ("InstanceType", "vCPUs", "MemoryGiB", "AcceleratorName", "AcceleratorCount", "Region",
            "AvailabilityZone", "Price", "SpotPrice"),
    "azure": ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price",
              "SpotPrice", "Region"),
    "lambda": ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price",
               "Region", "SpotPrice"),
}

# (name, array typecode) in file order; "H" = uint16 string index, "I" = uint32, "d" = float64.
_GROUP_COLUMNS = (
    ("itype", "H"), ("acc", "H"), ("count", "d"), ("vcpus", "d"), ("mem", "d"),
    ("region", "H"), ("arch", "H"), ("first_row", "I"),
)
_ROW_COLUMNS = (("zone", "H"), ("price", "d"), ("spot", "d"))

_AZURE_ARM = re.compile(r"^Standard_[A-Z]+\d+(-\d+)?[a-z]*p[a-z]*_v\d+$")


@dataclass(frozen=True)
class Row:
    """One normalised catalog row; strings are ``""`` and numbers NaN where upstream is empty."""

    instance_type: str
    accelerator: str
    count: float
    vcpus: float
    memory: float
    region: str
    zone: str
    arch: str
    price: float
    spot: float

    def key(self) -> tuple[Any, ...]:
        """The row as a comparable tuple, NaN mapped to None so equal rows compare equal."""
        return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in (
            self.accelerator, self.count, self.instance_type, self.region, self.zone,
            self.vcpus, self.memory, self.arch, self.price, self.spot))


def infer_arch(cloud: str, instance_type: str, arch_column: str) -> str:
    """The CPU architecture of an instance type.

    AWS says so in its ``Arch`` column (``i386`` rows are old types that also run
    64-bit x86, so they count as ``x86_64``; ``*_mac`` rows are Mac dedicated
    hosts). The other clouds have no such column, so it is inferred from names
    their providers document: GCP ``t2a`` (Ampere), Azure sizes with the ``p``
    feature letter (``Standard_D4ps_v5``), Lambda ``gh200``. GCP accelerator-only
    rows have no instance and get ``""``.

    :param cloud: catalog cloud name.
    :param instance_type: the row's instance type (may be empty for GCP accelerators).
    :param arch_column: AWS's ``Arch`` value, ``""`` elsewhere.
    :returns: ``x86_64``, ``arm64``, ``arm64_mac``, ``x86_64_mac`` or ``""``.
    """
    if not instance_type:
        return ""
    if cloud == "aws":
        return "x86_64" if arch_column in ("i386", "") else arch_column
    if cloud == "gcp":
        return "arm64" if instance_type.startswith("t2a-") else "x86_64"
    if cloud == "azure":
        return "arm64" if _AZURE_ARM.match(instance_type) else "x86_64"
    if cloud == "lambda":
        return "arm64" if "gh200" in instance_type else "x86_64"
    return "x86_64"


def _number(text: str, column: str, line: int, cloud: str) -> float:
    text = text.strip()
    if not text:
        return NAN
    try:
        value = float(text)
    except ValueError:
        raise SkyConfigError(
            f"{cloud}/vms.csv line {line}: column {column} is {text!r}, expected a number or nothing"
        ) from None
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise SkyConfigError(f"{cloud}/vms.csv line {line}: column {column} is {text!r}, expected >= 0")
    return value


def rows_from_csv(cloud: str, text: str) -> Iterator[Row]:
    """Parse and validate one cloud's ``vms.csv``.

    :param cloud: one of :data:`REQUIRED_COLUMNS`.
    :param text: the whole file (any line endings).
    :returns: the rows in file order, duplicates included.
    :raises SkyConfigError: a missing column or a malformed value, with its line number.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SkyConfigError(f"{cloud}/vms.csv is empty") from None
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED_COLUMNS[cloud] if c not in index]
    if missing:
        raise SkyConfigError(
            f"{cloud}/vms.csv lacks column(s) {', '.join(missing)}; header is {','.join(header)}"
        )
    zone_i = index.get("AvailabilityZone")
    arch_i = index.get("Arch")
    it_i, acc_i, cnt_i = index["InstanceType"], index["AcceleratorName"], index["AcceleratorCount"]
    cpu_i, mem_i, reg_i = index["vCPUs"], index["MemoryGiB"], index["Region"]
    price_i, spot_i = index["Price"], index["SpotPrice"]
    width = len(header)
    for line, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != width:
            raise SkyConfigError(f"{cloud}/vms.csv line {line}: {len(fields)} fields, header has {width}")
        itype = fields[it_i].strip()
        acc = fields[acc_i].strip()
        region = fields[reg_i].strip()
        if not region:
            raise SkyConfigError(f"{cloud}/vms.csv line {line}: empty Region")
        if not itype and not acc:
            raise SkyConfigError(f"{cloud}/vms.csv line {line}: neither InstanceType nor AcceleratorName")
        count = _number(fields[cnt_i], "AcceleratorCount", line, cloud)
        if acc and math.isnan(count):
            raise SkyConfigError(f"{cloud}/vms.csv line {line}: accelerator {acc} without a count")
        if not acc:
            count = NAN
        yield Row(
            instance_type=itype,
            accelerator=acc,
            count=count,
            vcpus=_number(fields[cpu_i], "vCPUs", line, cloud),
            memory=_number(fields[mem_i], "MemoryGiB", line, cloud),
            region=region,
            zone=fields[zone_i].strip() if zone_i is not None else "",
            arch=infer_arch(cloud, itype, fields[arch_i].strip() if arch_i is not None else ""),
            price=_number(fields[price_i], "Price", line, cloud),
            spot=_number(fields[spot_i], "SpotPrice", line, cloud),
        )


def _sort_key(row: Row) -> tuple[Any, ...]:
    count = -1.0 if math.isnan(row.count) else row.count
    return (row.accelerator, count, row.instance_type, row.region, row.zone)


def unique_rows(rows: Iterable[Row]) -> list[Row]:
    """Drop repeated rows (GCP lists some TPU rows twice) and sort them in group order.

    :param rows: parsed rows, in file order.
    :returns: the first row of each ``(instance, accelerator, count, region, zone)``, sorted.
    """
    seen: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        seen.setdefault(_sort_key(row), row)
    return [seen[k] for k in sorted(seen)]


def encode(cloud: str, rows: Iterable[Row], source: dict[str, Any] | None = None) -> bytes:
    """Serialise one cloud's rows into the compact format.

    :param cloud: catalog cloud name.
    :param rows: parsed rows (duplicates are dropped here).
    :param source: provenance to keep in the header (free-form JSON).
    :returns: the file content.
    :raises SkyConfigError: no rows, or one instance type with two different shapes.
    """
    ordered = unique_rows(rows)
    if not ordered:
        raise SkyConfigError(f"{cloud}/vms.csv has no rows")
    strings: list[str] = [""]
    string_index: dict[str, int] = {"": 0}

    def intern(s: str) -> int:
        i = string_index.get(s)
        if i is None:
            i = string_index[s] = len(strings)
            strings.append(s)
        return i

    groups: dict[str, array] = {name: array(code) for name, code in _GROUP_COLUMNS}
    cols: dict[str, array] = {name: array(code) for name, code in _ROW_COLUMNS}
    acc_index: dict[str, list[list[Any]]] = {}
    itype_index: dict[str, list[int]] = {}
    shapes: dict[str, tuple[Any, ...]] = {}
    previous: tuple[Any, ...] | None = None
    for n, row in enumerate(ordered):
        group_key = (row.accelerator, row.count if row.accelerator else None, row.instance_type, row.region)
        if group_key != previous:
            previous = group_key
            g = len(groups["itype"])
            shape = Row(row.instance_type, row.accelerator, row.count, row.vcpus, row.memory,
                        "", "", row.arch, 0.0, 0.0).key()
            if row.instance_type:
                if shapes.setdefault(row.instance_type, shape) != shape:
                    raise SkyConfigError(f"{cloud}/vms.csv: instance type {row.instance_type} has two shapes")
                span = itype_index.setdefault(row.instance_type, [g, g])
                span[1] = g + 1
            if row.accelerator:
                runs = acc_index.setdefault(row.accelerator, [])
                if runs and runs[-1][0] == row.count:
                    runs[-1][2] = g + 1
                else:
                    runs.append([row.count, g, g + 1])
            for name, value in (("itype", intern(row.instance_type)), ("acc", intern(row.accelerator)),
                                ("count", row.count), ("vcpus", row.vcpus), ("mem", row.memory),
                                ("region", intern(row.region)), ("arch", intern(row.arch)),
                                ("first_row", n)):
                groups[name].append(value)
        cols["zone"].append(intern(row.zone))
        cols["price"].append(row.price)
        cols["spot"].append(row.spot)
    groups["first_row"].append(len(ordered))  # sentinel: group g's rows are first_row[g]:first_row[g+1]
    if len(strings) > 0xFFFF:
        raise SkyConfigError(f"{cloud}/vms.csv has too many distinct names for the compact format")
    header = {
        "format": FORMAT_VERSION,
        "cloud": cloud,
        "source": source or {},
        "n_groups": len(groups["itype"]),
        "n_rows": len(ordered),
        "strings": strings,
        "acc_index": acc_index,
        "itype_index": itype_index,
    }
    body = io.BytesIO()
    head = json.dumps(header, separators=(",", ":")).encode()
    body.write(struct.pack("<I", len(head)))
    body.write(head)
    for name, _ in _GROUP_COLUMNS:
        body.write(_le_bytes(groups[name]))
    for name, _ in _ROW_COLUMNS:
        body.write(_le_bytes(cols[name]))
    return MAGIC + zlib.compress(body.getvalue(), 9)


def _le_bytes(arr: array) -> bytes:
    if sys.byteorder == "little":
        return arr.tobytes()
    swapped = array(arr.typecode, arr)
    swapped.byteswap()
    return swapped.tobytes()


class CompactCloud:
    """One cloud's catalog, decoded: plain Python lists, indexed for the optimizer.

    Attributes are read-only by convention. Groups ``g`` hold one instance type (or
    one GCP accelerator) in one region; their rows are ``first_row[g]`` up to
    ``first_row[g + 1]``.
    """

    __slots__ = (
        "acc",
        "acc_by_lower",
        "acc_index",
        "arch",
        "cloud",
        "count",
        "first_row",
        "itype",
        "itype_index",
        "mem",
        "memo",
        "n_groups",
        "n_rows",
        "plain_groups",
        "price",
        "region",
        "source",
        "spot",
        "strings",
        "vcpus",
        "zone",
    )

    def __init__(self, data: bytes) -> None:
        if not data.startswith(MAGIC):
            raise SkyConfigError("not a compact catalog file (bad magic)")
        try:
            body = zlib.decompress(data[len(MAGIC):])
            (head_len,) = struct.unpack_from("<I", body)
            header = json.loads(body[4:4 + head_len])
        except (zlib.error, struct.error, ValueError) as exc:
            raise SkyConfigError(f"corrupt compact catalog file: {exc}") from None
        if header.get("format") != FORMAT_VERSION:
            raise SkyConfigError(f"compact catalog format {header.get('format')} is not {FORMAT_VERSION}")
        self.cloud: str = header["cloud"]
        self.source: dict[str, Any] = header["source"]
        self.n_groups: int = header["n_groups"]
        self.n_rows: int = header["n_rows"]
        self.strings: list[str] = header["strings"]
        self.acc_index: dict[str, list[list[Any]]] = header["acc_index"]
        self.itype_index: dict[str, list[int]] = header["itype_index"]
        self.acc_by_lower: dict[str, str] = {name.lower(): name for name in self.acc_index}
        # Tables derived by the optimizer live and die with this catalog, so a refresh never serves stale ones.
        self.memo: dict[Any, Any] = {}
        # Accelerator-less groups sort first ("" < any name), so they are one leading run.
        plain_end = min((runs[0][1] for runs in self.acc_index.values()), default=self.n_groups)
        self.plain_groups = range(0, plain_end)
        offset = 4 + head_len
        columns: dict[str, list[Any]] = {}
        for name, code, length in (
            *((n, c, self.n_groups + (1 if n == "first_row" else 0)) for n, c in _GROUP_COLUMNS),
            *((n, c, self.n_rows) for n, c in _ROW_COLUMNS),
        ):
            arr = array(code)
            size = arr.itemsize * length
            arr.frombytes(body[offset:offset + size])
            if sys.byteorder != "little":
                arr.byteswap()
            offset += size
            columns[name] = arr.tolist()
        if offset != len(body):
            raise SkyConfigError("corrupt compact catalog file: size mismatch")
        strings = self.strings
        # Strings are resolved once here so the optimizer's inner loops never index the table.
        self.itype: list[str] = [strings[i] for i in columns["itype"]]
        self.acc: list[str] = [strings[i] for i in columns["acc"]]
        self.region: list[str] = [strings[i] for i in columns["region"]]
        self.arch: list[str] = [strings[i] for i in columns["arch"]]
        self.zone: list[str] = [strings[i] for i in columns["zone"]]
        self.count: list[float] = columns["count"]
        self.vcpus: list[float] = columns["vcpus"]
        self.mem: list[float] = columns["mem"]
        self.first_row: list[int] = columns["first_row"]
        self.price: list[float] = columns["price"]
        self.spot: list[float] = columns["spot"]

    def rows(self) -> Iterator[Row]:
        """Every stored row, in stored order (used to check the compact form against the CSVs)."""
        for g in range(self.n_groups):
            for r in range(self.first_row[g], self.first_row[g + 1]):
                yield Row(self.itype[g], self.acc[g], self.count[g], self.vcpus[g], self.mem[g],
                          self.region[g], self.zone[r], self.arch[g], self.price[r], self.spot[r])

    def groups_for(self, accelerator: str | None = None, count: float | None = None) -> range:
        """Group indices of one accelerator and count.

        :param accelerator: canonical (catalog-cased) name; ``None`` for the groups of
            instances that carry no accelerator (GCP accelerator-only rows excluded).
        :param count: per-instance count; ``None`` for the first count listed.
        :returns: a contiguous range of group indices, empty when there is none.
        """
        if accelerator is None:
            return self.plain_groups
        runs = self.acc_index.get(accelerator)
        if not runs:
            return range(0)
        for run_count, start, stop in runs:
            if count is None or abs(run_count - count) < 1e-9:
                return range(start, stop)
        return range(0)

    def counts_for(self, accelerator: str) -> list[float]:
        """The per-instance counts offered for an accelerator.

        :param accelerator: canonical (catalog-cased) name.
        """
        return [run[0] for run in self.acc_index.get(accelerator, [])]
