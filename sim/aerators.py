"""Simulated aerator nodes: a local timer, obedience to ``cmd``, power draw and failures.

Until the first command arrives an aerator follows its local timer (micro-pore grids at night,
fountains for morning and evening looks). A command ``{"aerator_on": bool}`` overrides the timer
until the next command; ``{"aerator_on": null}`` or ``{"mode": "schedule"}`` hands it back to the
timer (an extension, see docs/contract-extensions.md).

Failures (``aerator_failure`` events):
- ``stopped``: the motor has tripped; the relay still says on (``aerator_on`` true when it should
  run) but it draws only standby power and moves no air;
- ``no_transfer``: it runs and draws power (a little less: a broken air line unloads the
  blower) but transfers no oxygen;
- ``ignores_cmd``: the relay is stuck where it was; commands and the timer change nothing.
"""

from __future__ import annotations

import numpy as np

from rivermon.core.topology import Node

# Local timer, local clock hours [on, off) (ASSUMPTION: the usual night aeration of restored
# creeks; fountains run for the morning and evening when residents look at the creek).
TIMER = {
    "micropore": ((18.0, 24.0), (0.0, 9.0)),
    "fountain": ((9.0, 11.0), (19.0, 22.0)),
}
STANDBY_W = 2.5          # controller electronics when the motor is off (ASSUMPTION)
RUN_FRACTION = 0.96      # running draw as a fraction of rated power (ASSUMPTION)
NO_TRANSFER_FRACTION = 0.8  # draw of a blower with a broken air line (ASSUMPTION)
POLICIES = ("schedule", "always", "off")


def timer_on(kind: str, hour: float) -> bool:
    """Whether the local timer of an aerator of this kind runs it at this local hour."""
    return any(a <= hour < b for a, b in TIMER.get(kind, ()))


class AeratorBank:
    """The aerator nodes of one creek: what each is told, does, reports and draws."""

    def __init__(self, nodes: list[Node], policy: str = "schedule"):
        if policy not in POLICIES:
            raise ValueError(f"aerator policy {policy!r} is not one of {', '.join(POLICIES)}")
        self.nodes = nodes
        self.index = {n.id: i for i, n in enumerate(nodes)}
        self.policy = policy
        self.commanded: list[bool | None] = [None] * len(nodes)
        self.last_reason: list[str] = [""] * len(nodes)
        self.relay = np.zeros(len(nodes), dtype=bool)   # what the node believes/reports
        self.failure: list[str | None] = [None] * len(nodes)
        self.frozen: list[bool | None] = [None] * len(nodes)

    def command(self, node_id: str, on: bool | None, reason: str = "") -> bool:
        """Apply a cmd; False when the node is not an aerator of this creek."""
        i = self.index.get(node_id)
        if i is None:
            return False
        self.commanded[i] = on
        self.last_reason[i] = reason
        return True

    def set_failure(self, node_id: str, mode: str | None) -> None:
        """Start (mode) or end (None) a failure of one aerator."""
        i = self.index[node_id]
        self.failure[i] = mode
        self.frozen[i] = bool(self.relay[i]) if mode == "ignores_cmd" else None

    def _wanted(self, i: int, hour: float) -> bool:
        if self.commanded[i] is not None:
            return bool(self.commanded[i])
        if self.policy == "always":
            return True
        if self.policy == "off":
            return False
        return timer_on(self.nodes[i].aerator or "", hour)

    def update(self, i: int, hour: float, noise: float) -> tuple[float, float, float]:
        """Set aerator ``i``'s relay for this hour; return (oxygen transfer, running, power W)."""
        mode = self.failure[i]
        self.relay[i] = self.frozen[i] if mode == "ignores_cmd" else self._wanted(i, hour)
        if not self.relay[i] or mode == "stopped":
            return 0.0, 0.0, max(0.0, STANDBY_W + 0.3 * noise)
        frac = NO_TRANSFER_FRACTION if mode == "no_transfer" else RUN_FRACTION
        transfer = 0.0 if mode == "no_transfer" else 1.0
        return transfer, 1.0, max(0.0, (self.nodes[i].rated_w or 0.0) * (frac + 0.01 * noise))

    def step(self, hour: float, power_noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance relays; return (oxygen transfer 0/1, machine running 0/1, power W) per aerator."""
        n = len(self.nodes)
        out = np.zeros((3, n))
        for i in range(n):
            out[:, i] = self.update(i, hour, float(power_noise[i]))
        return out[0], out[1], out[2]
