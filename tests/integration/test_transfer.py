"""Uploads and downloads over rsync and over SFTP, both incremental, on real nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_sky.core import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(sky_home: Path) -> Iterator[Cluster]:
    c = Cluster.launch("xfer", num_nodes=2)
    yield c
    c.down()


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    (root / "skip.log").write_text("no")


@pytest.mark.parametrize("method", ["rsync", "sftp"])
def test_upload_is_incremental_with_delete_and_exclude(cluster: Cluster, tmp_path: Path, method: str) -> None:
    cluster.transfer.force_sftp = method == "sftp"
    src = tmp_path / "src"
    _tree(src)
    first = cluster.upload(str(src), "~/data", exclude=["*.log"])
    assert first.method == method
    assert first.files_sent == 2 * 2  # two files on each of two nodes
    listing = cluster.run("cd ~/data && find . -type f | sort").stdout
    assert listing == ["./a.txt\n./sub/b.bin\n"] * 2
    again = cluster.upload(str(src), "~/data", exclude=["*.log"])
    assert again.files_sent == 0
    (src / "a.txt").write_text("changed!")
    os.utime(src / "a.txt", (1_700_000_000, 1_700_000_000))
    (src / "sub" / "b.bin").unlink()
    third = cluster.upload(str(src), "~/data", exclude=["*.log"], delete=True)
    assert third.files_sent == 2 and third.files_deleted == 2
    assert cluster.run("cat ~/data/a.txt; ls ~/data/sub").stdout == ["changed!"] * 2


@pytest.mark.parametrize("method", ["rsync", "sftp"])
def test_download_dir_and_file(cluster: Cluster, tmp_path: Path, method: str) -> None:
    cluster.transfer.force_sftp = method == "sftp"
    cluster.run(
        "mkdir -p ~/out/deep && echo m$SKYPILOT_R > ~/out/model.txt && echo d > ~/out/deep/x",
        envs={"SKYPILOT_R": "1"},
        nodes=[1],
    )
    dest = tmp_path / "dest"
    stats = cluster.download("~/out", str(dest), node=1)
    assert stats.files_sent == 2
    assert (dest / "model.txt").read_text() == "m1\n"
    assert (dest / "deep" / "x").read_text() == "d\n"
    assert cluster.download("~/out", str(dest), node=1).files_sent == 0
    single = tmp_path / "single" / "model.txt"
    cluster.download("~/out/model.txt", str(single), node=1)
    assert single.read_text() == "m1\n"


def test_upload_single_file_to_a_new_directory_and_missing_source(cluster: Cluster, tmp_path: Path) -> None:
    f = tmp_path / "one.txt"
    f.write_text("1")
    cluster.upload(str(f), "~/deep/er/one.txt", nodes=[0])
    assert cluster.run("cat ~/deep/er/one.txt", nodes=[0]).stdout == ["1"]
    from airflow_provider_sky.core import SkyConfigError

    with pytest.raises(SkyConfigError, match="does not exist"):
        cluster.upload(str(tmp_path / "missing"), "~/x")
    with pytest.raises(SkyConfigError, match="does not exist on node 0"):
        cluster.download("~/missing", str(tmp_path / "m"))


def test_rsync_uses_the_pinned_host_key(cluster: Cluster, tmp_path: Path) -> None:
    """A forged pin makes rsync refuse the node (StrictHostKeyChecking with our own known_hosts)."""
    from airflow_provider_sky.core.errors import HostKeyMismatchError, SkyError
    from airflow_provider_sky.core.keys import generate_private_key, public_key_line

    data = cluster.handle.to_dict()
    data["nodes"][0]["host_key"] = " ".join(public_key_line(generate_private_key()).split()[:2])
    forged = Cluster.from_handle(data)
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("x")
    with pytest.raises((HostKeyMismatchError, SkyError)):
        forged.transfer.upload(str(src), "~/forged", ranks=[0])
    command = cluster.transfer.ssh_command(cluster.runner.connections[0])
    assert "StrictHostKeyChecking=yes" in command and "BatchMode=yes" in command
