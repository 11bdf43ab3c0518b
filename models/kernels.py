"""Vectorised streaming kernels: each takes a chunk plus the state carried from the last chunk.

Every kernel gives the same answer whether a series arrives in one chunk or one value at a
time (the carry makes it so); the live service feeds small chunks, replay feeds large ones.

>>> import numpy as np
>>> cusum(np.array([1.0, 1.0, -5.0, 2.0]), 0.0)
(array([1., 2., 0., 2.]), 2.0)
"""

from __future__ import annotations

import numpy as np

NAN = float("nan")


def cusum(d: np.ndarray, s0: float) -> tuple[np.ndarray, float]:
    """One-sided CUSUM ``S_i = max(0, S_{i-1} + d_i)`` (Lindley recursion), vectorised."""
    if d.size == 0:
        return d.astype(float), s0
    c = s0 + np.cumsum(d)
    s = c - np.minimum(0.0, np.minimum.accumulate(c))
    return s, float(s[-1])


def last_index_where(mask: np.ndarray) -> np.ndarray:
    """For each i, the largest j <= i with mask[j] (or -1)."""
    idx = np.where(mask, np.arange(mask.size), -1)
    return np.maximum.accumulate(idx) if mask.size else idx


def run_start(cond: np.ndarray, t: np.ndarray, carry: float | None) -> tuple[np.ndarray, float | None]:
    """For each i where ``cond`` holds, the time its current run of ``cond`` began (else NaN).

    ``carry`` is the start time of a run still going at the end of the previous chunk.
    """
    n = cond.size
    if n == 0:
        return np.empty(0), carry
    brk = last_index_where(~cond)
    first = brk + 1
    starts = np.where(first < n, t[np.minimum(first, n - 1)], NAN)
    if carry is not None:
        starts = np.where(brk < 0, carry, starts)
    starts = np.where(cond, starts, NAN)
    out_carry = float(starts[-1]) if cond[-1] else None
    return starts, out_carry


def hysteresis(enter: np.ndarray, leave: np.ndarray, carry: bool) -> tuple[np.ndarray, bool]:
    """A latch: on where ``enter``, off where ``leave`` (enter wins), else as before."""
    n = enter.size
    if n == 0:
        return enter.astype(bool), carry
    code = np.where(enter, 1, np.where(leave, 0, -1))
    li = last_index_where(code >= 0)
    state = np.where(li >= 0, code[np.maximum(li, 0)] == 1, carry)
    return state, bool(state[-1])


def ffill(values: np.ndarray, mask: np.ndarray, carry: float) -> tuple[np.ndarray, float]:
    """Forward-fill ``values`` taken where ``mask`` holds, starting from ``carry``."""
    if values.size == 0:
        return values.astype(float), carry
    li = last_index_where(mask)
    out = np.where(li >= 0, values[np.maximum(li, 0)], carry)
    return out.astype(float), float(out[-1])


def median3(x: np.ndarray, prev: list[float]) -> np.ndarray:
    """Running median of the last three values (two carried from before), spike-proof."""
    if x.size == 0:
        return x
    p = list(prev[-2:])
    while len(p) < 2:
        p.insert(0, x[0] if not p else p[0])
    ext = np.concatenate([np.asarray(p, dtype=float), x])
    a, b, c = ext[:-2], ext[1:-1], ext[2:]
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def run_lengths(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) index pairs of the runs of True in ``mask``."""
    if mask.size == 0:
        return []
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(d[::2].tolist(), d[1::2].tolist()))
