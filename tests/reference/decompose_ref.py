#!/usr/bin/python3
"""Independent numpy reference for tests/decompose_test.cpp (DecomposeReference.*).

Writes tests/expected/decompose_ref.json: a fixed small weight W [m,n], calibration inputs X
[tokens,n] (so gram = XᵀX and abs_mean = mean|X|), and for several ranks r the reconstruction
errors of svd, asvd (alpha=0.5) and svdllm computed the textbook way (explicit S⁻¹, no shared
code with the C++): frobenius_sq = ‖W − Ŵ_r‖_F², output_sq = ‖(W − Ŵ_r)Xᵀ‖_F².
Run:  /usr/bin/python3 tests/reference/decompose_ref.py
"""
import json
import os

import numpy as np

SEED = 20240607
M, N, TOKENS = 10, 14, 50
RANKS = [1, 3, 6]
ALPHA = 0.5


def f32(a):
    return a.astype(np.float32).astype(np.float64)  # values exactly representable in float32


def truncate(M_, r):
    U, s, Vt = np.linalg.svd(M_, full_matrices=False)
    return U[:, :r] @ np.diag(s[:r]) @ Vt[:r, :]


def errors(W, X, W_hat):
    D = W - W_hat
    return {"frobenius_sq": float(np.sum(D * D)), "output_sq": float(np.sum((D @ X.T) ** 2))}


def main():
    rng = np.random.default_rng(SEED)
    W = f32(rng.standard_normal((M, N)) * (0.7 ** np.arange(N))[None, :] + 0.1 * rng.standard_normal((M, N)))
    channel_scale = np.exp(rng.uniform(-2.0, 1.5, N))  # outlier-ish input channels
    X = f32(rng.standard_normal((TOKENS, N)) * channel_scale[None, :] + 0.3 * rng.standard_normal((TOKENS, 1)))
    gram = X.T @ X
    abs_mean = f32(np.mean(np.abs(X), axis=0))

    s = abs_mean ** ALPHA
    L = np.linalg.cholesky(gram)
    results = {}
    for r in RANKS:
        results[str(r)] = {
            "svd": errors(W, X, truncate(W, r)),
            "asvd": errors(W, X, truncate(W * s[None, :], r) / s[None, :]),
            "svdllm": errors(W, X, truncate(W @ L, r) @ np.linalg.inv(L)),
        }
    out = {
        "generator": "tests/reference/decompose_ref.py (numpy %s, seed %d)" % (np.__version__, SEED),
        "m": M, "n": N, "tokens": TOKENS, "alpha": ALPHA,
        "W": W.tolist(), "X": X.tolist(), "gram": gram.tolist(), "abs_mean": abs_mean.tolist(),
        "errors": results,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "expected", "decompose_ref.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
