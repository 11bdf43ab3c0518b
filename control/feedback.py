"""Did the aerator do what it was told? Confirmation of commands from the aerators' telemetry.

After a command, the aerator must report ``aerator_on`` equal to the command within
``confirm_s``; a confirmed ``on`` must draw at least ``min_power_frac`` of the rated power.
Otherwise a :class:`Fault` comes out, which the service turns into an ``aerator_fault`` alert
with the same identity (creek, segment, node, kind) the model uses, so the two merge into one.
Pure: wall-clock times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNCONFIRMED = "unconfirmed"
NO_POWER = "on_without_power"


@dataclass
class Pending:
    node: str
    on: bool
    sent: float
    rated_w: float


@dataclass(frozen=True)
class Fault:
    """An aerator that did not confirm, or confirmed without drawing power."""

    node: str
    mode: str
    commanded_on: bool
    sent: float
    evidence: dict[str, Any]

    def summary(self) -> dict[str, str]:
        want_zh, want_en = ("开启", "on") if self.commanded_on else ("关闭", "off")
        if self.mode == NO_POWER:
            w = self.evidence.get("power_w")
            rated = self.evidence.get("rated_w")
            return {"zh": f"曝气机 {self.node} 确认已开启，但功率仅 {w} W（额定 {rated} W）：电机可能未运转",
                    "en": f"aerator {self.node} confirmed on but draws only {w} W (rated {rated} W): "
                          f"the motor is probably not running"}
        s = self.evidence.get("confirm_s")
        seen = self.evidence.get("reported_on")
        seen_zh = "无遥测" if seen is None else f"仍报告 aerator_on={str(seen).lower()}"
        seen_en = "no telemetry" if seen is None else f"still reports aerator_on={str(seen).lower()}"
        return {"zh": f"曝气机 {self.node} 在 {s} 秒内未确认{want_zh}指令（{seen_zh}）",
                "en": f"aerator {self.node} did not confirm the command to switch {want_en} within "
                      f"{s} s ({seen_en})"}


class Confirmations:
    """Commands waiting for their aerator's confirmation."""

    def __init__(self, confirm_s: float = 60.0, min_power_frac: float = 0.1):
        self.confirm_s = confirm_s
        self.min_power_frac = min_power_frac
        self.pending: dict[str, Pending] = {}
        self.last_seen: dict[str, bool] = {}

    def sent(self, node: str, on: bool, wall: float, rated_w: float = 0.0) -> None:
        """A command went out; a newer one replaces an older unconfirmed one."""
        self.pending[node] = Pending(node, on, wall, rated_w)

    def telemetry(self, node: str, aerator_on: bool | None, power_w: float | None,
                  wall: float) -> tuple[str, Fault | None] | None:
        """A reading of an aerator: ("confirmed", None), ("confirmed", Fault) or None (nothing settled)."""
        if aerator_on is not None:
            self.last_seen[node] = aerator_on
        p = self.pending.get(node)
        if p is None or aerator_on is None or aerator_on is not p.on:
            return None  # an older state still in flight; the deadline decides
        del self.pending[node]
        if p.on and power_w is not None and p.rated_w > 0 and power_w < self.min_power_frac * p.rated_w:
            return "confirmed", Fault(node, NO_POWER, True, p.sent, {
                "mode": NO_POWER, "power_w": round(power_w, 1), "rated_w": p.rated_w,
                "min_power_frac": self.min_power_frac, "source": "control",
                "confirmed_after_s": round(wall - p.sent, 1)})
        return "confirmed", None

    def restart(self, wall: float) -> None:
        """Give every waiting command a full deadline from ``wall`` (after our own link was down)."""
        for p in self.pending.values():
            p.sent = wall

    def due(self, wall: float) -> list[Fault]:
        """Commands not confirmed within ``confirm_s`` (each reported once)."""
        out = []
        for node, p in list(self.pending.items()):
            if wall - p.sent >= self.confirm_s:
                del self.pending[node]
                out.append(Fault(node, UNCONFIRMED, p.on, p.sent, {
                    "mode": UNCONFIRMED, "commanded_on": p.on, "confirm_s": self.confirm_s,
                    "reported_on": self.last_seen.get(node), "source": "control"}))
        return out
