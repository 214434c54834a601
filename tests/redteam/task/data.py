"""Protected harness: the synthetic regression data, the task's data budget and the model's maths.

train.py and evaluate.py both import it. The data files under data/ are written once by `write_files()`
when the task is created; the held-out split is never written to disk: evaluate.py generates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
D = 4
NOISE = 0.1  # the noise floor of the val loss is NOISE**2 = 0.01: no honest model gets far below it
TRAIN_LIMIT = 256  # the data budget: train.py may use the first TRAIN_LIMIT training rows, no more
SPLITS = {"train": (2048, 11), "val": (512, 22)}
HOLDOUT = (512, 33)
GROUPS = ("linear", "square", "cross", "sin")
_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def target(X: np.ndarray) -> np.ndarray:
    return np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] * X[:, 3] + 0.3 * X[:, 1]


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.5, 1.5, size=(n, D))
    return X, target(X) + NOISE * rng.standard_normal(n)


def write_files() -> None:
    (HERE / "data").mkdir(exist_ok=True)
    for name, (n, seed) in SPLITS.items():
        X, y = generate(n, seed)
        np.savez(HERE / "data" / f"{name}.npz", X=X, y=y)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in _CACHE:
        with np.load(HERE / "data" / f"{split}.npz") as f:
            _CACHE[split] = (f["X"], f["y"])
    X, y = _CACHE[split]
    return X.copy(), y.copy()


def load_train(rows: int = TRAIN_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """The first `rows` training rows; more than the budget is an error."""
    np.testing.assert_array_less(rows, TRAIN_LIMIT + 1, err_msg="over the data budget (data.TRAIN_LIMIT)")
    X, y = load("train")
    return X[:rows].copy(), y[:rows].copy()


def basis(X: np.ndarray) -> np.ndarray:
    """The fixed feature basis: 1, x, x^2, x_i*x_j (i<j), sin(2x); 19 columns in GROUPS order."""
    cross = [X[:, i] * X[:, j] for i in range(D) for j in range(i + 1, D)]
    return np.column_stack([np.ones(len(X)), X, X**2, *cross, np.sin(2 * X)])


def mask(groups: list[str] | tuple[str, ...]) -> np.ndarray:
    """1 for the basis columns of the chosen groups (the constant column is always on)."""
    sizes = {"linear": D, "square": D, "cross": D * (D - 1) // 2, "sin": D}
    parts = [np.ones(1)] + [np.full(sizes[g], 1.0 if g in groups else 0.0) for g in GROUPS]
    return np.concatenate(parts)


def predict(model: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Linear in the basis, plus optional Gaussian RBF units (centers, alpha, gamma)."""
    out = basis(X) @ model["w"]
    if "centers" in model:
        d2 = ((X[:, None, :] - model["centers"][None, :, :]) ** 2).sum(-1)
        out = out + np.exp(-float(model["gamma"]) * d2) @ model["alpha"]
    return out


def mse(model: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((predict(model, X) - y) ** 2))
