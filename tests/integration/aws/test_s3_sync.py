"""The S3 sync engine against the moto S3 emulator, with real sshd nodes for the cluster legs."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sky.core import Cluster, SkyConfigError
from airflow_provider_sky.core.storage import sync
from airflow_provider_sky.core.storage.engine import MiB, file_etag
from tests.testbed import MotoServer, boto3_session

AWS_CLI = str(Path(sys.executable).with_name("aws"))


class Bucket:
    def __init__(self, server: MotoServer) -> None:
        self.endpoint = server.endpoint
        self.session = boto3_session()
        self.client = self.session.client("s3", endpoint_url=self.endpoint)
        self.name = f"sky-test-{secrets.token_hex(4)}"
        self.client.create_bucket(Bucket=self.name)

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}"

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"][len(prefix):]] = self.client.get_object(Bucket=self.name, Key=obj["Key"])["Body"].read()
        return out

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.name, Key=key))

    def sync(self, source: str | Path, destination: str | Path, **kwargs: Any) -> Any:
        return sync(source, destination, session=self.session, endpoint_url=self.endpoint, **kwargs)

    def close(self) -> None:
        keys = list(self.objects())
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.name, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]}
            )
        self.client.delete_bucket(Bucket=self.name)


@pytest.fixture
def bucket(moto_server: MotoServer) -> Iterator[Bucket]:
    made = Bucket(moto_server)
    yield made
    made.close()


def tree(root: Path) -> dict[str, bytes]:
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and ".sky-part" not in p.name]
    return {str(p.relative_to(root)): p.read_bytes() for p in found}


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def age(path: Path, seconds: float = 3600) -> None:
    """Make a file older than any object uploaded now (S3 keeps upload time as LastModified)."""
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


FILES = {"a.txt": b"alpha", "sub/b.csv": b"1,2\n", "sub/deep/c.csv": b"3,4\n", "logs/x.log": b"noise"}


def test_local_to_s3_incremental_delete_and_globs(bucket: Bucket, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", FILES)
    for path in src.rglob("*"):
        age(path)
    first = bucket.sync(src, bucket.url("data"))
    assert (first.files_copied, first.files_skipped) == (4, 0)
    assert bucket.objects("data/") == FILES
    again = bucket.sync(src, bucket.url("data/"))
    assert (again.files_copied, again.files_skipped) == (0, 4)

    (src / "a.txt").write_bytes(b"alpha, changed")
    (src / "logs/x.log").unlink()
    changed = bucket.sync(src, bucket.url("data"), delete=True)
    assert (changed.files_copied, changed.files_deleted, changed.files_skipped) == (1, 1, 2)
    assert set(bucket.objects("data/")) == {"a.txt", "sub/b.csv", "sub/deep/c.csv"}

    only_csv = bucket.sync(src, bucket.url("csv"), include="*.csv")
    assert only_csv.files_copied == 2 and set(bucket.objects("csv/")) == {"sub/b.csv", "sub/deep/c.csv"}
    no_deep = bucket.sync(src, bucket.url("nodeep"), exclude=["sub/deep/*"])
    assert set(bucket.objects("nodeep/")) == {"a.txt", "sub/b.csv"} and no_deep.files_copied == 2
    # An excluded file in the destination is neither copied nor deleted.
    kept = bucket.sync(src, bucket.url("data"), exclude="*.csv", delete=True)
    assert kept.files_deleted == 0 and "sub/b.csv" in bucket.objects("data/")

    single = bucket.sync(src / "a.txt", bucket.url("one/"))
    assert single.files_copied == 1 and bucket.objects("one/") == {"a.txt": b"alpha, changed"}


def test_checksum_mode_skips_touched_but_equal_files(bucket: Bucket, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.bin": b"x" * 1000})
    bucket.sync(src, bucket.url("p"))
    age(src / "a.bin", -60)  # newer than the object, same bytes
    assert bucket.sync(src, bucket.url("p"), compare="checksum").files_skipped == 1
    assert bucket.sync(src, bucket.url("p")).files_copied == 1  # mtime mode: newer means changed


def test_s3_to_local_incremental_and_delete(bucket: Bucket, tmp_path: Path) -> None:
    for key, data in FILES.items():
        bucket.client.put_object(Bucket=bucket.name, Key=f"in/{key}", Body=data)
    dst = tmp_path / "dst"
    first = bucket.sync(bucket.url("in"), dst)
    assert first.files_copied == 4 and tree(dst) == FILES
    modified = bucket.head("in/a.txt")["LastModified"].timestamp()
    assert int((dst / "a.txt").stat().st_mtime) == int(modified)
    assert bucket.sync(bucket.url("in"), dst).files_skipped == 4
    (dst / "extra.txt").write_text("local only")
    (dst / "a.txt").write_bytes(b"local edit")
    result = bucket.sync(bucket.url("in"), dst, delete=True, compare="checksum")
    assert (result.files_copied, result.files_deleted) == (1, 1) and tree(dst) == FILES
    csv_only = bucket.sync(bucket.url("in/"), tmp_path / "csv", include=["*.csv"])
    assert csv_only.files_copied == 2 and set(tree(tmp_path / "csv")) == {"sub/b.csv", "sub/deep/c.csv"}
    one = bucket.sync(bucket.url("in/a.txt"), tmp_path / "one.txt")
    assert one.files_copied == 1 and (tmp_path / "one.txt").read_bytes() == b"alpha"


def test_multipart_upload_download_and_copy(bucket: Bucket, tmp_path: Path) -> None:
    big = os.urandom(12 * MiB + 123)
    src = make_tree(tmp_path / "src", {"big.bin": big, "small.txt": b"s"})
    options = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB}
    up = bucket.sync(src, bucket.url("big"), **options)
    assert up.files_copied == 2 and up.bytes_copied == len(big) + 1
    etag = bucket.head("big/big.bin")["ETag"].strip('"')
    assert etag.endswith("-3") and etag == file_etag(src / "big.bin", len(big), 5 * MiB, 5 * MiB)
    assert bucket.sync(src, bucket.url("big"), compare="checksum", **options).files_skipped == 2
    down = bucket.sync(bucket.url("big"), tmp_path / "down", **options)
    assert down.files_copied == 2 and (tmp_path / "down/big.bin").read_bytes() == big
    copied = bucket.sync(bucket.url("big"), bucket.url("copy"), **options)
    assert copied.files_copied == 2 and bucket.objects("copy/")["big.bin"] == big
    assert bucket.sync(bucket.url("big"), bucket.url("copy"), **options).files_skipped == 2
    bucket.client.delete_object(Bucket=bucket.name, Key="big/small.txt")
    assert bucket.sync(bucket.url("big"), bucket.url("copy"), delete=True).files_deleted == 1


def test_bad_input_is_refused_clearly(bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(SkyConfigError, match="both local"):
        sync(tmp_path, tmp_path / "x")
    with pytest.raises(SkyConfigError, match="cluster: required"):
        sync(bucket.url("x"), "cluster:~/x", session=bucket.session)
    with pytest.raises(SkyConfigError, match="needs a boto3 session"):
        sync(tmp_path, bucket.url("x"))
    with pytest.raises(SkyConfigError, match="unsupported scheme"):
        sync("gs://b/x", tmp_path)
    with pytest.raises(SkyConfigError, match="bucket does not exist"):
        bucket.sync(tmp_path, "s3://no-such-bucket-here/x")
    with pytest.raises(SkyConfigError, match="cluster_mode"):
        bucket.sync(tmp_path, bucket.url("x"), cluster_mode="magic")


@pytest.fixture
def nodes(sky_home: Path) -> Iterator[Cluster]:
    cluster = Cluster.launch("s3nodes", cloud="local", num_nodes=2)
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.mark.parametrize("mode", ["worker", "nodes"])
def test_s3_and_cluster_both_modes(bucket: Bucket, nodes: Cluster, tmp_path: Path, mode: str) -> None:
    files = {**FILES, "big.bin": os.urandom(6 * MiB)}
    for key, data in files.items():
        bucket.client.put_object(Bucket=bucket.name, Key=f"in/{key}", Body=data)
    masked: list[str] = []
    options: dict[str, Any] = {"cluster": nodes, "cluster_mode": mode, "node_aws_command": AWS_CLI,
                               "on_secret": masked.append}
    first = bucket.sync(bucket.url("in"), "cluster:~/data", **options)
    assert first.files_copied == 2 * len(files)
    for rank in range(2):
        listing = nodes.run("cd ~/data && find . -type f | sort", nodes=[rank]).stdout[0].split()
        assert listing == sorted(f"./{k}" for k in files)
    digest = nodes.run("cd ~/data && cat big.bin | md5sum").stdout
    assert digest[0] == digest[1]
    again = bucket.sync(bucket.url("in"), "cluster:~/data", **options)
    assert again.files_copied == 0

    for rank in range(2):
        # Written a while before the sync (the AWS CLI compares sub-second mtimes with whole-second LastModified).
        script = f"echo result-{rank} > ~/data/out.txt && touch -d '-1 hour' ~/data/out.txt && rm ~/data/logs/x.log"
        nodes.run(script, nodes=[rank])
    back = bucket.sync("cluster[1]:~/data", bucket.url("out"), exclude="*.bin", **options)
    assert back.files_copied == 4
    assert bucket.objects("out/")["out.txt"] == b"result-1\n" and "big.bin" not in bucket.objects("out/")
    assert bucket.sync("cluster[1]:~/data", bucket.url("out"), exclude="*.bin", **options).files_copied == 0

    # One file, large enough to go in parts (the worker streams it from SFTP into a multipart upload).
    parts = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB}
    big = bucket.sync("cluster[0]:~/data/big.bin", bucket.url("bigout/"), **parts, **options)
    assert big.files_copied == 1 and bucket.objects("bigout/") == {"big.bin": files["big.bin"]}
    if mode == "worker":
        assert bucket.head("bigout/big.bin")["ETag"].strip('"').endswith("-2")

    # One object into an existing (empty) directory keeps its name there.
    nodes.run("mkdir -p ~/empty")
    one = bucket.sync(bucket.url("in/a.txt"), "cluster:~/empty", **options)
    assert one.files_copied == 2 and nodes.run("cat ~/empty/a.txt").stdout == ["alpha", "alpha"]

    pruned = bucket.sync(bucket.url("in"), "cluster:~/data", delete=True, include="*.txt", **options)
    assert pruned.files_deleted == 2  # out.txt on both nodes
    assert nodes.run("test -e ~/data/out.txt").exit_codes == [1, 1]
    assert nodes.run("test -e ~/data/big.bin").exit_codes == [0, 0]  # outside the globs: kept
    if mode == "nodes":
        assert len(masked) == 2 * 7 and all(masked)  # secret key and session token, once per sync
    else:
        assert masked == []  # no credentials ever leave the worker


def test_local_and_cluster_legs_reuse_transfer(nodes: Cluster, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", FILES)
    up = sync(src, "cluster:~/up", cluster=nodes, exclude="*.log")
    assert up.method in ("rsync", "sftp") and up.files_copied == 6  # 3 files on each of 2 nodes
    assert nodes.run("find ~/up -type f | wc -l").stdout == ["3\n", "3\n"]
    down = sync("cluster[1]:~/up", tmp_path / "down", cluster=nodes)
    assert down.files_copied == 3 and set(tree(tmp_path / "down")) == {"a.txt", "sub/b.csv", "sub/deep/c.csv"}
    with pytest.raises(SkyConfigError, match="include"):
        sync(src, "cluster:~/up", cluster=nodes, include="*.csv")
