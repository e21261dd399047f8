#!/usr/bin/env python3
"""Winograd F(m x m, 3 x 3) matrices for a set of interpolation points, and their float32 rounding.

For each variant below: A^T, G and B^T (B^T's rows scaled to integers, G's rows by the inverse, as in
include/tinyvid/backend/cpu/winograd.hpp), a check that they compute the correlation, and the largest error of a
float32 Winograd conv (weights transformed in double then rounded, as tinyvid does) over the output's rms, against
the direct sum in double, on unit normal inputs and He-scaled weights, for 64, 256 and 512 input channels.

    /usr/bin/python3 tools/winograd_points.py        (Debian's python3-numpy and python3-sympy; about a minute)

docs/cpu_kernels.md cites its figures where it weighs F(3x3, 3x3) against F(2x2, 3x3) for training.
"""
from fractions import Fraction

import numpy as np
import sympy as sp


def matrices(points, m, r=3):
    """A^T (m x n), G (n x r), B^T (n x n) for the finite points and infinity (n = m + r - 1)."""
    n = m + r - 1
    pts = [sp.Rational(p) for p in points]
    assert len(pts) == n - 1
    AT, G = sp.zeros(m, n), sp.zeros(n, r)
    for j, p in enumerate(pts):
        for i in range(m):
            AT[i, j] = p**i
        f = sp.prod([p - q for q in pts if q != p])
        for k in range(r):
            G[j, k] = p**k / f
    AT[m - 1, n - 1] = 1
    G[n - 1, r - 1] = 1
    # B^T from the identity sum_j AT[i, j] G[j, k] BT[j, l] = [l == i + k] (the correlation y_i = sum_k g_k d_(i+k)).
    BT = sp.Matrix(n, n, lambda a, b: sp.Symbol(f"b{a}_{b}"))
    eqs = [sum(AT[i, j] * G[j, k] * BT[j, l] for j in range(n)) - (1 if l == i + k else 0)
           for i in range(m) for k in range(r) for l in range(n)]
    solution = sp.solve(eqs, list(BT), dict=True)
    assert solution, f"no B^T for the points {points}"
    BT = BT.subs(solution[0])
    for j in range(n):  # B^T's row j to integers, G's row j by the inverse
        den = sp.ilcm(*[sp.fraction(e)[1] for e in BT.row(j)])
        num = sp.igcd(*[int(e * den) for e in BT.row(j) if e != 0])
        BT[j, :] = BT.row(j) * sp.Rational(den, num)
        G[j, :] = G.row(j) / sp.Rational(den, num)
    return AT, G, BT


def max_error_over_rms(AT, G, BT, C, tiles=600, seed=0):
    A = np.array(AT, dtype=np.float64).astype(np.float32)
    B = np.array(BT, dtype=np.float64).astype(np.float32)
    Gd = np.array(G, dtype=np.float64)
    n, m = B.shape[0], A.shape[0]
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((tiles, C, n, n)).astype(np.float32)
    g = (rng.standard_normal((C, 3, 3)) * np.sqrt(2.0 / (9 * C))).astype(np.float32)
    U = np.einsum("ab,cbd,ed->cae", Gd, g.astype(np.float64), Gd).astype(np.float32)
    V = np.einsum("ab,tcbd,ed->tcae", B, d, B)
    M = np.einsum("cae,tcae->tae", U, V)
    Y = np.einsum("ab,tbd,ed->tae", A, M, A)
    dd, gg = d.astype(np.float64), g.astype(np.float64)
    ref = np.zeros((tiles, m, m))
    for i in range(m):
        for j in range(m):
            ref[:, i, j] = np.einsum("tcab,cab->t", dd[:, :, i:i + 3, j:j + 3], gg)
    return float(np.abs(Y - ref).max() / np.sqrt((ref**2).mean()))


VARIANTS = [
    ("F(2x2, 3x3): 0, 1, -1 (tinyvid's, training)", [0, 1, -1], 2),
    ("F(4x4, 3x3): 0, 1, -1, 1/2, -2 (tinyvid's, inference)", [0, 1, -1, Fraction(1, 2), -2], 4),
    ("F(3x3, 3x3): 0, 1, -1, 2", [0, 1, -1, 2], 3),
    ("F(3x3, 3x3): 0, 1, -1, -2", [0, 1, -1, -2], 3),
    ("F(3x3, 3x3): 0, 1, -1, 1/2", [0, 1, -1, Fraction(1, 2)], 3),
]

if __name__ == "__main__":
    for name, points, m in VARIANTS:
        AT, G, BT = matrices([str(p) for p in points], m)
        A, Gm, B = (np.array(M, dtype=float) for M in (AT, G, BT))
        d, g = np.random.default_rng(1).standard_normal(m + 2), np.random.default_rng(2).standard_normal(3)
        exact = np.abs(A @ ((Gm @ g) * (B @ d)) - [g @ d[i:i + 3] for i in range(m)]).max()
        assert exact < 1e-12, (name, exact)
        errors = [max_error_over_rms(AT, G, BT, C, seed=s) for s, C in enumerate((64, 256, 512))]
        print(f"{name}: max error / rms at C = 64, 256, 512: " + ", ".join(f"{e:.2e}" for e in errors))
        print(f"  AT = {AT.tolist()}\n  G = {G.tolist()}\n  BT = {BT.tolist()}")
