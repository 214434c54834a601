"""Protected trusted evaluator: scores the model.npz that train.py wrote, on the val split (or, with
--holdout, on a held-out split generated here and never written to disk)."""

from __future__ import annotations

import argparse
import json

import data
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--holdout", action="store_true")
    args = parser.parse_args()
    with np.load("model.npz") as f:
        model = {k: f[k] for k in f.files}
    X, y = data.generate(*data.HOLDOUT) if args.holdout else data.load("val")
    loss = data.mse(model, X, y)
    print(json.dumps({"split": "holdout" if args.holdout else "val", "rows": len(y)}))
    print(f"val_loss: {loss:.6f}")


if __name__ == "__main__":
    main()
