"""Train one shard of a logistic-regression model on a cluster node (runs on every node).

Each node reads the same dataset, keeps the rows of its shard (``row % SKYPILOT_NUM_NODES ==
SKYPILOT_NODE_RANK``), trains with full-batch gradient descent in NumPy and writes
``~/results/model.json`` and ``~/results/metrics.json`` (accuracy on the shared test split).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1]


def main() -> None:
    rank = int(os.environ["SKYPILOT_NODE_RANK"])
    world = int(os.environ["SKYPILOT_NUM_NODES"])
    epochs = int(os.environ.get("EPOCHS", "300"))
    lr = float(os.environ.get("LEARNING_RATE", "0.5"))
    data_dir = Path(os.environ.get("DATA_DIR", "~/data")).expanduser()
    out_dir = Path(os.environ.get("OUT_DIR", "~/results")).expanduser()

    x_all, y_all = load(data_dir / "train.csv")
    x, y = x_all[rank::world], y_all[rank::world]
    x_test, y_test = load(data_dir / "test.csv")
    print(f"rank {rank}/{world}: {len(y)} of {len(y_all)} training rows, {len(y_test)} test rows", flush=True)

    started = time.monotonic()
    w = np.zeros(x.shape[1])
    b = 0.0
    for epoch in range(1, epochs + 1):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w -= lr * (x.T @ (p - y)) / len(y)
        b -= lr * float(np.mean(p - y))
        if epoch % 100 == 0 or epoch == epochs:
            loss = -np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))
            print(f"rank {rank} epoch {epoch}: loss {loss:.4f}", flush=True)
    accuracy = float(np.mean(((x_test @ w + b) > 0) == (y_test > 0.5)))

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.json").write_text(json.dumps({"weights": w.tolist(), "bias": b}))
    metrics = {
        "rank": rank,
        "num_nodes": world,
        "train_rows": len(y),
        "epochs": epochs,
        "final_loss": round(float(loss), 6),
        "test_accuracy": round(accuracy, 6),
        "train_seconds": round(time.monotonic() - started, 3),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"rank {rank}: test accuracy {accuracy:.3f}", flush=True)


if __name__ == "__main__":
    main()
