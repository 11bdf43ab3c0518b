"""The fast paths of replay and learning give exactly what the plain ones give."""

from __future__ import annotations

import numpy as np

from rivermon.models import node


def test_hour_stats_at_once_equal_one_hour_at_a_time():
    rng = np.random.default_rng(11)
    for log in (False, True):
        for _ in range(40):
            lens = rng.integers(1, 80, size=int(rng.integers(3, 12)))
            xx = np.round(rng.normal(5.0, 2.0, size=int(lens.sum())), int(rng.integers(0, 3)))
            xx[rng.random(xx.size) < 0.3] = 3.0  # flat runs: zero steps, peq and the resolution
            yv = np.log1p(np.maximum(xx, 0.0)) if log else xx
            cuts = np.concatenate([[0], np.cumsum(lens)])
            segs = [(b, int(a), int(c)) for b, (a, c) in enumerate(zip(cuts[:-1], cuts[1:]))]
            got = node._hour_stats(yv, xx, segs)
            assert sorted(got) == list(range(1, len(segs) - 1))
            for k, st in got.items():
                _, i0, i1 = segs[k]
                want = node._one_hour_stats(xx[i0:i1], float(xx[i0 - 1]), log)
                assert repr(st) == repr(want)  # bit for bit


def test_hour_stats_skip_uneven_hours_and_short_chunks():
    xx = np.arange(5000.0)
    assert node._hour_stats(xx, xx, [(0, 0, 10), (1, 10, 20)]) == {}  # nothing both opens and closes
    # one long bucket among many short ones: padding to its width would cost too much
    segs = [(b, b, b + 1) for b in range(20)] + [(20, 20, 3020), (21, 3020, 3021), (22, 3021, 3022)]
    assert node._hour_stats(xx, xx, segs) == {}
