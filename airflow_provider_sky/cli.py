"""The ``sky-airflow`` command: look up accelerators and prices, plan the cheapest launch, manage the catalog.

It imports only the provisioning core (never Airflow, paramiko or boto3) so it
starts fast. Exit codes: 0 success, 2 bad arguments or a request nothing fits
(one ``sky-airflow: error: ...`` line on stderr), 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_sky.core.errors import SkyConfigError, SkyError

if TYPE_CHECKING:
    from airflow_provider_sky.core.resources import Resources

PROG = "sky-airflow"
DEFAULT_LIMIT = 20


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


class _UsageError(Exception):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    gpus = sub.add_parser("show-gpus", help="accelerators, counts per instance and cheapest prices per cloud")
    gpus.add_argument("--cloud", help="only this cloud (aws, gcp, azure, lambda)")
    gpus.add_argument("--json", action="store_true", help="print JSON instead of a table")

    cheap = sub.add_parser("cheapest", help="the cheapest-first launch plan for a request")
    cheap.add_argument("--accelerators", help="NAME:COUNT, e.g. A100:8; several comma-separated = any of them")
    cheap.add_argument("--cpus", help="vCPUs per node: exact (4) or at least (4+)")
    cheap.add_argument("--memory", help="memory per node in GiB (or with units): exact (32) or at least (32+)")
    cheap.add_argument("--instance-type", help="pin an instance type")
    cheap.add_argument("--cloud", help="pin a cloud")
    cheap.add_argument("--region", help="pin a region")
    cheap.add_argument("--zone", help="pin a zone")
    cheap.add_argument("--infra", help="cloud[/region[/zone]], '*' for any part")
    cheap.add_argument("--spot", action="store_true", help="rank by spot price")
    cheap.add_argument("--max-hourly-cost", type=float, help="per-node price cap, USD per hour")
    cheap.add_argument("--num-nodes", type=_positive_int, default=1, help="nodes in the cluster (default 1)")
    cheap.add_argument("--limit", type=_positive_int, default=DEFAULT_LIMIT,
                       help=f"show at most K candidates (default {DEFAULT_LIMIT}; 0 = all)")
    cheap.add_argument("--json", action="store_true", help="print a JSON list of candidates")

    cat = sub.add_parser("catalog", help="inspect or refresh the instance catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command", metavar="ACTION", parser_class=_Parser)
    cat_sub.required = True
    info = cat_sub.add_parser("info", help="source, snapshot date and rows per cloud of the catalog in use")
    info.add_argument("--json", action="store_true")
    refresh = cat_sub.add_parser("refresh", help="replace your catalog with a newer one in the same format")
    refresh.add_argument("--from", dest="source", required=True, metavar="URL_OR_DIR",
                         help="directory or http(s) base URL laid out like SkyPilot's catalog repository")
    refresh.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (default 60)")
    return parser


# ---------------------------------------------------------------- formatting

def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}".rstrip("0").rstrip(".") if value < 1000 else f"${value:,.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------- commands

def _resources_from_flags(args: argparse.Namespace) -> Resources:
    from airflow_provider_sky.core.spec import parse_resources

    spec: dict[str, Any] = {}
    if args.accelerators:
        parts = [p.strip() for p in args.accelerators.split(",") if p.strip()]
        if len(parts) > 1:
            # Several accelerators from the command line: any of them, cheapest first (the YAML dict form).
            spec["accelerators"] = {
                name: (count if sep else None) for name, sep, count in (p.partition(":") for p in parts)
            }
        else:
            spec["accelerators"] = args.accelerators
    for flag, key in (("cpus", "cpus"), ("memory", "memory"), ("instance_type", "instance_type"),
                      ("cloud", "cloud"), ("region", "region"), ("zone", "zone"), ("infra", "infra"),
                      ("max_hourly_cost", "max_hourly_cost")):
        value = getattr(args, flag)
        if value is not None:
            spec[key] = value
    if args.spot:
        spec["use_spot"] = True
    return parse_resources(spec, path="flags")


def _cmd_cheapest(args: argparse.Namespace) -> int:
    from airflow_provider_sky.core.optimizer import plan

    candidates = plan(_resources_from_flags(args), num_nodes=args.num_nodes)
    shown = candidates[: args.limit] if args.limit else candidates
    if args.json:
        _print(json.dumps([c.to_dict() for c in shown], indent=1))
        return 0
    rows = []
    for c in shown:
        acc = f"{c.accelerator}:{c.accelerator_count:g}" if c.accelerator else "-"
        zones = ",".join(c.zones) if c.zones else "-"
        rows.append([c.cloud, c.region, c.instance_type, acc, _num(c.vcpus), _num(c.memory_gib),
                     _money(c.on_demand_price), _money(c.spot_price), _money(c.cluster_price), zones])
    market = "spot" if shown and shown[0].use_spot else "on-demand"
    _print(_table(["CLOUD", "REGION", "INSTANCE", "ACCELERATORS", "VCPUS", "MEM_GIB", "ON_DEMAND", "SPOT",
                   f"TOTAL/H ({args.num_nodes}x {market})", "ZONES"], rows))
    if len(shown) < len(candidates):
        _print(f"... {len(candidates) - len(shown)} more (use --limit 0 for all)")
    return 0


def _gpu_rows(cloud_filter: str | None) -> list[dict[str, Any]]:
    from airflow_provider_sky.core import catalog
    from airflow_provider_sky.core.optimizer import plan
    from airflow_provider_sky.core.resources import Accelerator, Resources

    if cloud_filter is not None and cloud_filter not in catalog.CLOUDS:
        raise SkyConfigError(f"--cloud {cloud_filter!r}: the catalog covers {', '.join(catalog.CLOUDS)}")
    clouds = [cloud_filter] if cloud_filter else list(catalog.CLOUDS)
    out: list[dict[str, Any]] = []
    for cloud in clouds:
        cat = catalog.load(cloud)
        for name in cat.acc_index:
            offers = []
            for count in cat.counts_for(name):
                entry: dict[str, Any] = {"count": count}
                for market, spot in (("on_demand", False), ("spot", True)):
                    try:
                        best = plan(Resources(cloud=cloud, accelerators=(Accelerator(name, count),), use_spot=spot))[0]
                    except SkyConfigError:
                        entry[market] = None  # no known price on that market
                    else:
                        entry[market] = {"price": best.price, "instance_type": best.instance_type,
                                         "region": best.region}
                offers.append(entry)

            def cheapest(market: str, offers: list[dict[str, Any]] = offers) -> dict[str, Any] | None:
                priced = [dict(o[market], count=o["count"]) for o in offers if o[market] is not None]
                return min(priced, key=lambda p: p["price"]) if priced else None

            out.append({"accelerator": name, "cloud": cloud, "counts": [o["count"] for o in offers],
                        "cheapest_on_demand": cheapest("on_demand"), "cheapest_spot": cheapest("spot"),
                        "offers": offers})
    out.sort(key=lambda r: (r["accelerator"].lower(), catalog.CLOUDS.index(r["cloud"])))
    return out


def _cmd_show_gpus(args: argparse.Namespace) -> int:
    rows = _gpu_rows(args.cloud)
    if args.json:
        _print(json.dumps(rows, indent=1))
        return 0

    def cell(best: dict[str, Any] | None) -> str:
        return "-" if best is None else f"{_money(best['price'])} (x{best['count']:g} {best['instance_type']})"

    _print(_table(
        ["ACCELERATOR", "CLOUD", "COUNTS", "CHEAPEST ON-DEMAND/H", "CHEAPEST SPOT/H"],
        [[r["accelerator"], r["cloud"], ",".join(f"{c:g}" for c in r["counts"]),
          cell(r["cheapest_on_demand"]), cell(r["cheapest_spot"])] for r in rows],
    ))
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from airflow_provider_sky.core import catalog

    if args.catalog_command == "info":
        data = catalog.info()
        if args.json:
            _print(json.dumps(data, indent=1))
            return 0
        _print(f"catalog:  {data['path']} ({data['origin']})")
        _print(f"source:   {data['source']}")
        _print(f"snapshot: {data['snapshot']}" + (f" (built {data['built_at']})" if data["built_at"] else ""))
        for cloud, rows in data["rows"].items():
            note = data["files"].get(f"{cloud}/vms.csv", "")
            _print(f"  {cloud:<7} {rows:>7,} rows" + (f"  {note}" if note else ""))
        return 0
    from airflow_provider_sky.core.catalog.refresh import refresh

    result = refresh(args.source, timeout=args.timeout)
    _print(f"catalog refreshed from {args.source} into {catalog.user_dir()}")
    for cloud, meta in result["clouds"].items():
        kept = " (kept: the source has none)" if f"{cloud}/vms.csv" in result["kept"] else ""
        _print(f"  {cloud:<7} {meta['csv_rows']:>7,} rows{kept}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sky-airflow``.

    :param argv: arguments without the program name (default: ``sys.argv[1:]``).
    :returns: the exit code (0 ok, 1 failure, 2 bad arguments or nothing fits).
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "cheapest":
            return _cmd_cheapest(args)
        if args.command == "show-gpus":
            return _cmd_show_gpus(args)
        return _cmd_catalog(args)
    except _UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2
    except SkyConfigError as exc:
        sys.stderr.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        return 2
    except SkyError as exc:
        sys.stderr.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        return 1
    except BrokenPipeError:
        # `sky-airflow cheapest | head`: the reader left; not an error worth a traceback.
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
