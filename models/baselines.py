"""The two baselines the harness runs beside the model, on the same data.

- **fixed threshold**: per node and field, flag readings outside the 0.5 %-99.5 % quantiles of
  the tuning period widened by 10 % of that range;
- **rolling robust z**: per node and field, flag readings whose distance to the median of the
  previous ``window`` readings exceeds ``k`` times their MAD (scaled to sigma).

Flags become alerts the same way the model's do: runs merged while closer than ``merge_s``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rivermon.models.fields import is_water_field
from rivermon.models.replay import Series
from rivermon.models.scoring import Alert


def _alerts(node: str, segment: str | None, t: np.ndarray, flag: np.ndarray, merge_s: float) -> list[Alert]:
    idx = np.flatnonzero(flag)
    out: list[Alert] = []
    if idx.size == 0:
        return out
    start = prev = idx[0]
    for i in idx[1:]:
        if t[i] - t[prev] > merge_s:
            out.append(Alert("anomaly", float(t[start]), float(t[prev]), float(t[start]), node, segment))
            start = i
        prev = i
    out.append(Alert("anomaly", float(t[start]), float(t[prev]), float(t[start]), node, segment))
    return out


def _fields(s: Series, ignore: tuple[str, ...]) -> list[str]:
    return [f for f in s.cols if is_water_field(f) and f not in ignore]


def fixed_threshold(series: list[Series], tune_until: float | None, merge_s: float = 1800.0,
                    ignore: tuple[str, ...] = (), seg_of: dict[str, str] | None = None) -> list[Alert]:
    out: list[Alert] = []
    for s in series:
        flag = np.zeros(s.t.size, bool)
        cut = tune_until if tune_until is not None else s.t[0] + 0.2 * (s.t[-1] - s.t[0])
        for f in _fields(s, ignore):
            x = s.cols[f]
            train = x[(s.t < cut) & ~np.isnan(x)]
            if train.size < 10:
                continue
            lo, hi = np.quantile(train, [0.005, 0.995])
            pad = 0.1 * (hi - lo)
            with np.errstate(invalid="ignore"):
                flag |= (x < lo - pad) | (x > hi + pad)
        out += _alerts(s.node, (seg_of or {}).get(s.node), s.t, flag, merge_s)
    return out


def rolling_robust_z(series: list[Series], window: int = 120, k: float = 5.0, merge_s: float = 1800.0,
                     ignore: tuple[str, ...] = (), seg_of: dict[str, str] | None = None) -> list[Alert]:
    out: list[Alert] = []
    for s in series:
        flag = np.zeros(s.t.size, bool)
        for f in _fields(s, ignore):
            x = s.cols[f]
            ok = ~np.isnan(x)
            xv = x[ok]
            if xv.size <= window:
                continue
            win = sliding_window_view(xv[:-1], window)  # the readings before each one
            med = np.empty(win.shape[0])
            mad = np.empty(win.shape[0])
            for i in range(0, win.shape[0], 8192):  # blocks keep memory small
                w = win[i:i + 8192]
                m = np.median(w, axis=1)
                med[i:i + 8192] = m
                mad[i:i + 8192] = 1.4826 * np.median(np.abs(w - m[:, None]), axis=1)
            res = np.abs(np.diff(np.sort(np.unique(xv))))
            eps = float(res.min()) if res.size else 1e-9
            z = np.abs(xv[window:] - med) / np.maximum(mad, eps)
            fl = np.zeros(xv.size, bool)
            fl[window:] = z > k
            flag[np.flatnonzero(ok)] |= fl
        out += _alerts(s.node, (seg_of or {}).get(s.node), s.t, flag, merge_s)
    return out
