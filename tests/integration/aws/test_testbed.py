"""The test bed cleans up after a run that was killed before its own cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed import netns_unavailable_reason, sweep_stale

KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from airflow_provider_sky.core.keys import generate_private_key, public_key_line
from tests.testbed import NetnsHosts, pick_subnet
hosts = NetnsHosts(Path(sys.argv[1]), pick_subnet()).setup()
key = generate_private_key()
host = hosts.add("i-1", str(hosts.network[10]), public_key_line(key), generate_private_key())
print(hosts.tag, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_is_swept(tmp_path: Path) -> None:
    reason = netns_unavailable_reason()
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "hosts")], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    tag = proc.stdout.strip()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"skyh-{tag}-0" in names
    removed = sweep_stale()
    assert f"skyh-{tag}-0" in removed and f"skybr{tag}" in removed
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert f"skyh-{tag}" not in after and f"skybr{tag}" not in links and f"skv{tag}" not in links
    sshd = subprocess.run(["pgrep", "-f", str(tmp_path / "hosts")], capture_output=True, text=True, check=False)
    assert sshd.stdout.strip() == ""
