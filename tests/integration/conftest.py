"""Fixtures for tests against real sshd processes.

Every test gets its own ``SKY_AIRFLOW_HOME``; afterwards it is checked that no
process the test started (sshd, a job, a detached child) is still running.
"""

from __future__ import annotations

import getpass
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_sky.core.keys import generate_private_key, public_key_line
from airflow_provider_sky.core.sshd import SshdNode, free_port
from tests.process_table import assert_nothing_left_running

pytestmark = pytest.mark.integration


def _require_sshd() -> None:
    if not any(os.access(p, os.X_OK) for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd")):
        pytest.fail("sshd is not installed: run scripts/bootstrap.sh (Debian: apt-get install openssh-server rsync)")


@pytest.fixture
def sky_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state root; fails the test if anything it started is still running at the end."""
    _require_sshd()
    home = tmp_path / "sky-home"
    home.mkdir()
    monkeypatch.setenv("SKY_AIRFLOW_HOME", str(home))
    yield home
    assert_nothing_left_running(home)


@pytest.fixture
def ssh_key() -> str:
    return generate_private_key()


class PoolHosts:
    """Stand-ins for existing SSH hosts: private sshd servers with their own homes."""

    def __init__(self, root: Path, private_key: str) -> None:
        self.root = root
        self.private_key = private_key
        self.nodes: list[SshdNode] = []
        self.hosts: list[dict[str, object]] = []

    def start(self, count: int) -> list[dict[str, object]]:
        for _ in range(count):
            node = SshdNode(self.root / f"host-{len(self.nodes)}")
            node.prepare(public_key_line(self.private_key), generate_private_key())
            port = free_port("127.0.0.1")
            node.start("127.0.0.1", port)
            self.nodes.append(node)
            self.hosts.append({"host": "127.0.0.1", "port": port, "user": getpass.getuser()})
        return self.hosts

    def home(self, index: int) -> Path:
        return self.nodes[index].home

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def pool(sky_home: Path, ssh_key: str) -> Iterator[PoolHosts]:
    hosts = PoolHosts(sky_home / "pool-hosts", ssh_key)
    yield hosts
    hosts.stop()
    shutil.rmtree(hosts.root, ignore_errors=True)
