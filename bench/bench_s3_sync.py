"""StorageSyncOperator's S3 engine against ``aws s3 sync`` on one moto server, same data.

500 files of 64 KiB plus 2 files of 50 MiB, local -> S3: a first sync and a no-op re-sync, each
tool into its own bucket. Our engine is timed twice: called in this process (as the operator runs
it) and as a fresh ``python -c`` process, so that interpreter and import time count as they do
for the AWS CLI. Goal: at most half the AWS CLI's wall time.

Run: ``.venv/bin/python bench/bench_s3_sync.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.testbed import TEST_KEY_ID, TEST_SECRET, MotoServer, boto3_session  # noqa: E402

SMALL_FILES, SMALL_SIZE = 500, 64 * 1024
BIG_FILES, BIG_SIZE = 2, 50 * 1024 * 1024

SUBPROCESS = """
import sys, boto3
from airflow_provider_sky.core.storage import sync
session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
stats = sync(sys.argv[1], sys.argv[2], session=session, endpoint_url=sys.argv[3])
print(stats.files_copied, stats.files_skipped)
"""


def make_data(root: Path) -> None:
    for index in range(SMALL_FILES):
        (root / "small" / f"{index // 100:02d}").mkdir(parents=True, exist_ok=True)
        (root / "small" / f"{index // 100:02d}" / f"file-{index:04d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    for index in range(BIG_FILES):
        (root / f"big-{index}.bin").write_bytes(os.urandom(BIG_SIZE))
    # Older than anything uploaded now, as data usually is.
    stamp = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (stamp, stamp))


def timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = MotoServer(Path(sys.executable).parent, work / "moto.log").start()
    try:
        data = work / "data"
        make_data(data)
        total = SMALL_FILES * SMALL_SIZE + BIG_FILES * BIG_SIZE
        print(f"data: {SMALL_FILES} x {SMALL_SIZE // 1024} KiB + {BIG_FILES} x {BIG_SIZE >> 20} MiB "
              f"= {total / (1 << 20):.0f} MiB; moto server {server.endpoint}; {os.cpu_count()} CPUs")
        session = boto3_session()
        client = session.client("s3", endpoint_url=server.endpoint)
        for bucket in ("ours", "oursproc", "awscli"):
            client.create_bucket(Bucket=f"bench-{bucket}")

        from airflow_provider_sky.core.storage import sync

        def ours(bucket: str) -> object:
            return sync(data, f"s3://bench-{bucket}/d", session=session, endpoint_url=server.endpoint)

        def ours_process(bucket: str) -> str:
            out = subprocess.run(
                [sys.executable, "-c", SUBPROCESS, str(data), f"s3://bench-{bucket}/d", server.endpoint],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )
            return out.stdout.strip()

        env = {**os.environ, "AWS_ACCESS_KEY_ID": TEST_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
               "AWS_DEFAULT_REGION": "us-east-1"}

        def awscli(bucket: str) -> str:
            out = subprocess.run(
                [str(Path(sys.executable).with_name("aws")), "s3", "sync", str(data), f"s3://bench-{bucket}/d",
                 "--endpoint-url", server.endpoint, "--no-progress"],
                capture_output=True, text=True, check=True, env=env,
            )
            return f"{len(out.stdout.splitlines())} uploaded"

        import psutil

        assert server.proc is not None
        emulator = psutil.Process(server.proc.pid)

        def emulator_cpu() -> float:
            times = emulator.cpu_times()
            return float(times.user + times.system)

        rows = []
        for label, fn, bucket in (("engine, in process", ours, "ours"),
                                  ("engine, fresh process", ours_process, "oursproc"),
                                  ("aws s3 sync", awscli, "awscli")):
            # The emulator's own CPU time shows how much of the wall time is the server's (same requests for all).
            cpu = emulator_cpu()
            first, first_out = timed(lambda fn=fn, bucket=bucket: fn(bucket))
            cpu = emulator_cpu() - cpu
            again, again_out = timed(lambda fn=fn, bucket=bucket: fn(bucket))
            rows.append((label, first, again))
            print(f"{label:24s} first sync {first:7.2f} s (emulator CPU {cpu:5.2f} s)   no-op re-sync {again:6.2f} s"
                  f"   ({_short(first_out)} / {_short(again_out)})")
        cli = rows[-1]
        for label, first, again in rows[:-1]:
            print(f"ratio {label:18s} vs aws cli: first {first / cli[1]:.2f}, no-op {again / cli[2]:.2f} "
                  "(goal <= 0.50)")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _short(value: object) -> str:
    if hasattr(value, "files_copied"):
        return f"{value.files_copied} copied, {value.files_skipped} unchanged"
    return str(value)


if __name__ == "__main__":
    main()
