"""Import cost of the provider's public API on top of ``import airflow.sdk`` (goal: under 50 ms added).

Each sample is a fresh interpreter that imports ``airflow.sdk`` first, then the operators and sensors,
timing the second step only; the best of the runs is reported (the least disturbed by other load).
It also lists any heavy library (paramiko, boto3, google, kubernetes, the catalog) the import pulled in.

Run: ``.venv/bin/python bench/bench_import.py [runs]``
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = set(sys.modules)
import airflow_provider_sky.operators, airflow_provider_sky.sensors
t2 = time.perf_counter()
new = set(sys.modules) - before
heavy = sorted(m for m in new if m.split(".")[0] in ("paramiko", "boto3", "botocore", "google", "kubernetes")
               or m.startswith("airflow_provider_sky.core.catalog"))
print(json.dumps({"sdk": t1 - t0, "added": t2 - t1, "modules": len(new), "heavy": heavy}))
"""


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
        samples.append(json.loads(out.strip().splitlines()[-1]))
    best = min(s["added"] for s in samples)
    median = sorted(s["added"] for s in samples)[len(samples) // 2]
    sdk = min(s["sdk"] for s in samples)
    heavy = sorted({m for s in samples for m in s["heavy"]})
    print(f"import airflow.sdk: best {sdk * 1000:.1f} ms")
    print(
        f"+ import airflow_provider_sky.operators, .sensors: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms "
        f"over {runs} runs ({samples[0]['modules']} new modules); goal < 50 ms: {'met' if best < 0.05 else 'MISSED'}"
    )
    print(f"heavy modules imported: {heavy or 'none'}")
    return 0 if not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
