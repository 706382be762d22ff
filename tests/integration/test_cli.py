"""The ``sky-airflow`` console script, run as a real subprocess.

Needs the package installed (``.venv/bin/pip install -e .``) so the script exists
next to the interpreter. The refresh test serves a catalog directory over HTTP
on 127.0.0.1 from a server started and stopped by a fixture.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_sky.core import catalog

SCRIPT = shutil.which("sky-airflow", path=os.path.dirname(sys.executable))


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if SCRIPT is None:
        pytest.fail("the sky-airflow console script is not installed: run .venv/bin/pip install -e .")
    env = {**os.environ, "SKY_AIRFLOW_HOME": str(home)}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120)


def test_cheapest_json_lists_candidates_cheapest_first(cli_home: Path) -> None:
    out = run(cli_home, "cheapest", "--accelerators", "A100:8", "--json")
    assert out.returncode == 0, out.stderr
    cands = json.loads(out.stdout)
    assert len(cands) == 20  # default --limit
    assert cands[0]["cloud"] == "lambda" and cands[0]["instance_type"] == "gpu_8x_a100"
    assert cands[0]["on_demand_price"] == 15.92 and cands[0]["price"] == 15.92
    assert [c["price"] for c in cands] == sorted(c["price"] for c in cands)
    assert {"region", "zones", "accelerator", "accelerator_count", "vcpus", "memory_gib", "spot_price"} <= set(cands[0])


def test_cheapest_flags_reach_the_plan(cli_home: Path) -> None:
    out = run(cli_home, "cheapest", "--accelerators", "a100:8", "--spot", "--num-nodes", "2", "--cloud", "aws",
              "--region", "us-east-1", "--limit", "0", "--json")
    assert out.returncode == 0, out.stderr
    (only,) = json.loads(out.stdout)
    assert (only["instance_type"], only["spot_price"], only["cluster_price"]) == ("p4d.24xlarge", 6.289, 12.578)
    out = run(cli_home, "cheapest", "--cpus", "4+", "--memory", "32GB+", "--infra", "gcp/us-central1", "--json",
              "--limit", "3")
    first = json.loads(out.stdout)[0]
    assert first["cloud"] == "gcp" and first["vcpus"] >= 4 and first["memory_gib"] >= 32
    # several accelerators: any of them, cheapest first
    out = run(cli_home, "cheapest", "--accelerators", "H100:8,A100:8", "--json", "--limit", "0")
    accs = [c["accelerator"] for c in json.loads(out.stdout)]
    assert accs[0] == "A100" and set(accs) == {"A100", "H100"}


def test_cheapest_table(cli_home: Path) -> None:
    out = run(cli_home, "cheapest", "--accelerators", "T4:1", "--limit", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["CLOUD", "REGION", "INSTANCE", "ACCELERATORS"]
    assert "g4dn.xlarge" in lines[1] and "$0.526" in lines[1]
    assert lines[-1].startswith("... ") and "more" in lines[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cheapest", "--accelerators", "A100-80G:8"], "did you mean 'A100-80GB'"),
        (["cheapest", "--num-nodes", "x"], "--num-nodes"),
        (["cheapest", "--num-nodes", "0"], "num_nodes must be a positive integer"),
        (["cheapest", "--cpus", "lots"], "cpus"),
        (["cheapest", "--accelerators", "A100:8", "--max-hourly-cost", "1"], "max_hourly_cost"),
        (["cheapest", "--frobnicate"], "unrecognized arguments"),
        (["show-gpus", "--cloud", "kubernetes"], "the catalog covers"),
        (["nope"], "invalid choice"),
        ([], "required"),
        (["catalog"], "required"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(cli_home: Path, args: list[str], message: str) -> None:
    out = run(cli_home, *args)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("sky-airflow: error: ")
    assert message in out.stderr


def test_show_gpus(cli_home: Path) -> None:
    out = run(cli_home, "show-gpus", "--cloud", "gcp", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["accelerator"]: r for r in json.loads(out.stdout)}
    a100 = rows["A100"]
    assert a100["counts"] == [1, 2, 4, 8, 16]
    assert a100["cheapest_on_demand"]["price"] == 2.42771  # a2-highgpu-1g + A100 in europe-west4
    assert rows["B200"]["cheapest_on_demand"] is None  # a4-highgpu-8g is listed at 0.0: unknown
    table = run(cli_home, "show-gpus").stdout.splitlines()
    assert table[0].split()[:3] == ["ACCELERATOR", "CLOUD", "COUNTS"]
    assert any(line.split()[:3] == ["L4", "aws", "0.125,0.25,0.5,1,4,8"] for line in table)


def test_catalog_info(cli_home: Path) -> None:
    out = run(cli_home, "catalog", "info", "--json")
    info = json.loads(out.stdout)
    assert info["origin"] == "packaged" and info["snapshot"] == "2026-11"
    assert info["rows"] == {"aws": 41695, "gcp": 29785, "azure": 5969, "lambda": 408}
    text = run(cli_home, "catalog", "info").stdout
    assert "snapshot: 2026-11" in text and "41,695 rows" in text


def test_cli_never_imports_airflow_paramiko_or_boto3(cli_home: Path) -> None:
    code = (
        "import sys\n"
        "from airflow_provider_sky.cli import main\n"
        "rc = main(['cheapest', '--accelerators', 'A100:8', '--json'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'paramiko', 'boto3'))\n"
        "assert rc == 0 and not bad, bad\n"
    )
    env = {**os.environ, "SKY_AIRFLOW_HOME": str(cli_home)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


@pytest.fixture
def catalog_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a copy of the packaged CSVs (SkyPilot's layout)."""
    root = tmp_path / "served"
    for gz in (catalog.PACKAGED_DIR / "csv").rglob("*.csv.gz"):
        target = root / gz.relative_to(catalog.PACKAGED_DIR / "csv").with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.decompress(gz.read_bytes()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_catalog_refresh_over_http(cli_home: Path, catalog_server: tuple[str, Path]) -> None:
    url, root = catalog_server
    lam = root / "lambda/vms.csv"
    lam.write_text(lam.read_text().replace(",15.92,", ",9.5,"))  # a newer, cheaper A100:8
    (root / "azure/vms.csv").unlink()  # upstream v8 has no Azure file: keep the current one
    out = run(cli_home, "catalog", "refresh", "--from", url)
    assert out.returncode == 0, out.stderr
    assert "azure" in out.stdout and "kept" in out.stdout
    info = json.loads(run(cli_home, "catalog", "info", "--json").stdout)
    assert info["origin"] == "refreshed" and info["source"] == url
    assert info["path"] == str(cli_home / "catalog")
    first = json.loads(run(cli_home, "cheapest", "--accelerators", "A100:8", "--json").stdout)[0]
    assert (first["instance_type"], first["price"]) == ("gpu_8x_a100", 9.5)

    # a broken source is refused and the refreshed catalog stays
    (root / "aws/vms.csv").write_text("InstanceType,Price\nm5.large,0.1\n")
    bad = run(cli_home, "catalog", "refresh", "--from", url)
    assert bad.returncode == 2 and "aws/vms.csv lacks column" in bad.stderr
    again = json.loads(run(cli_home, "cheapest", "--accelerators", "A100:8", "--json").stdout)[0]
    assert again["price"] == 9.5
    assert sorted(p.name for p in cli_home.iterdir()) == ["catalog"]


def test_catalog_refresh_unreachable_url_fails_cleanly(cli_home: Path) -> None:
    # A port just released by us has no listener: connection refused at once, not a hang.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = run(cli_home, "catalog", "refresh", "--from", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert out.returncode == 1 and out.stderr.startswith(f"sky-airflow: error: GET http://127.0.0.1:{port}/")
    assert not (cli_home / "catalog").exists()
