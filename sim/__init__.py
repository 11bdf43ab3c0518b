"""rivermon.sim: the simulated Huanglong Creek (see docs/simulator.md).

The public surface for in-process use (tests, evaluations) is below; everything else is
internal to the simulator.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Simulation", "load_scenario", "parse_scenario", "scenario_names", "TruthWriter",
           "read_truth", "Coefficients"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `rivermon --help` does not pay for numpy.
    if name == "Simulation":
        from .engine import Simulation
        return Simulation
    if name in ("load_scenario", "parse_scenario", "scenario_names"):
        from . import scenario
        return getattr(scenario, name)
    if name in ("TruthWriter", "read_truth"):
        from . import truth
        return getattr(truth, name)
    if name == "Coefficients":
        from .physics import Coefficients
        return Coefficients
    raise AttributeError(name)
