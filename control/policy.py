"""The aeration controller of one segment: pure decisions from DO, the clock and overrides.

Rules, in order of precedence, for each aerator of the segment:

1. **manual override** (``on``/``off`` until a time): obeyed at once, minimum times do not apply;
2. **DO unknown** (no usable sensor: faulty, stale or offline): run on schedule, every aerator from
   dusk to dawn and fountains also in their hours (``fallback``);
3. **DO known** (``auto``): by day, on below ``on_below_mg_l`` and off at ``off_above_mg_l`` or
   above (hysteresis: in between, the last demand holds), and early when DO below the off point
   falls faster than ``falling_mg_l_h`` (a discharge plume or a stalled flow); by night (dusk to dawn) on unless DO is
   comfortably high (``night_comfort_mg_l``; off again at ``+ NIGHT_DEADBAND_MG_L``); fountains
   also run in their configured hours (daytime flow and looks);
4. **minimum on and off times** hold a switch that came too soon after the last one.

Every :class:`Decision` carries its reason in Chinese and English. The controller does no I/O:
give it the time, the segment's DO and the overrides, and it answers; the service and the
evaluation drive it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from .daylight import NightClock, in_windows, parse_windows

NIGHT_DEADBAND_MG_L = 1.0  # once running at night, run on to 1 mg/L above comfort: fewer switchings
FOUNTAIN = "fountain"
MODES = ("auto", "fallback", "manual")


@dataclass(frozen=True)
class ControlParams:
    """Set points and times of the controller (settings ``control_*``)."""

    on_below_mg_l: float = 4.5
    off_above_mg_l: float = 6.0
    night_comfort_mg_l: float = 7.0
    min_on_s: float = 1800.0
    min_off_s: float = 900.0
    falling_mg_l_h: float = 1.0
    fountain_hours: tuple[tuple[float, float], ...] = ((8.0, 10.0), (19.0, 21.0))
    night: NightClock = field(default_factory=NightClock)

    def __post_init__(self) -> None:
        if not self.off_above_mg_l > self.on_below_mg_l:
            raise ValueError(f"control_off_above_mg_l ({self.off_above_mg_l}) must be above "
                             f"control_on_below_mg_l ({self.on_below_mg_l})")
        if self.min_on_s < 0 or self.min_off_s < 0:
            raise ValueError("control_min_on_s and control_min_off_s must not be negative")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], timezone: str = "Asia/Shanghai") -> "ControlParams":
        """Build from a :class:`~rivermon.core.config.Config`; ValueError names a bad setting."""
        return cls(on_below_mg_l=float(cfg["control_on_below_mg_l"]),
                   off_above_mg_l=float(cfg["control_off_above_mg_l"]),
                   night_comfort_mg_l=float(cfg["control_night_comfort_mg_l"]),
                   min_on_s=float(cfg["control_min_on_s"]),
                   min_off_s=float(cfg["control_min_off_s"]),
                   falling_mg_l_h=float(cfg["control_falling_mg_l_h"]),
                   fountain_hours=parse_windows(cfg["control_fountain_hours"], "control_fountain_hours"),
                   night=NightClock.from_setting(cfg["control_night"], timezone))


@dataclass(frozen=True)
class Aerator:
    """One aerator as the controller sees it."""

    node: str
    kind: str = "micropore"
    rated_w: float = 0.0


@dataclass(frozen=True)
class Override:
    """A manual order for one aerator: ``on`` or ``off`` until ``until`` (Unix seconds)."""

    node: str
    mode: str
    until: float
    by: str


@dataclass(frozen=True)
class Decision:
    """What one aerator should do now, and why."""

    node: str
    segment: str
    on: bool
    changed: bool
    mode: str
    rule: str
    reason: dict[str, str]
    do_mg_l: float | None = None

    def reason_text(self) -> str:
        """The reason as one line, Chinese first (the ``reason`` of the ``cmd`` payload)."""
        return f"{self.reason['zh']} / {self.reason['en']}"


@dataclass
class _Switch:
    on: bool | None = None
    since: float = float("-inf")


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _hm(hours: float) -> str:
    h = int(hours) % 24
    return f"{h:02d}:{int(round((hours - int(hours)) * 60)) % 60:02d}"


def _clock(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%m-%d %H:%M")


class SegmentController:
    """Hysteresis, night rule, fountain hours, fallback and minimum times for one segment."""

    def __init__(self, segment: str, aerators: list[Aerator], params: ControlParams | None = None):
        self.segment = segment
        self.aerators = list(aerators)
        self.p = params or ControlParams()
        self.demand: bool | None = None
        self.switch: dict[str, _Switch] = {a.node: _Switch() for a in self.aerators}

    # -- the segment's demand --------------------------------------------------------------
    def _demand(self, now: float, do: float, trend: float | None = None,
                downstream: tuple[str, float] | None = None) -> tuple[bool, str, dict[str, str]]:
        p, d = self.p, _num(do)
        if p.night.is_night(now):
            dusk, dawn = p.night.dusk_dawn(now)
            span = f"{_hm(dusk)}–{_hm(dawn)}"
            limit = p.night_comfort_mg_l + (NIGHT_DEADBAND_MG_L if self.demand else 0.0)
            if do >= limit:
                return False, "night_comfortable", {
                    "zh": f"夜间（{span}），但溶解氧 {d} mg/L 已足够高（≥ {_num(limit)}），不必曝气",
                    "en": f"night ({span}) but DO {d} mg/L is comfortably high (>= {_num(limit)})"}
            return True, "night", {
                "zh": f"夜间（{span}）溶解氧 {d} mg/L 低于 {_num(limit)}，夜间曝气",
                "en": f"night ({span}): DO {d} mg/L below {_num(limit)}, aerate overnight"}
        if downstream is not None and downstream[1] < p.on_below_mg_l and do < p.night_comfort_mg_l:
            # Water carries this reach's oxygen downstream: aerating here lifts the reach below.
            seg, low = downstream[0], _num(downstream[1])
            return True, "downstream_low", {
                "zh": f"下游河段 {seg} 溶解氧 {low} mg/L 低于开启点 {_num(p.on_below_mg_l)}，本段曝气补氧",
                "en": f"downstream segment {seg} DO {low} mg/L below the on point "
                      f"{_num(p.on_below_mg_l)}: aerate here to supply it"}
        if do < p.on_below_mg_l:
            return True, "low_do", {
                "zh": f"溶解氧 {d} mg/L 低于开启点 {_num(p.on_below_mg_l)}",
                "en": f"DO {d} mg/L below the on point {_num(p.on_below_mg_l)}"}
        if (not self.demand and trend is not None and p.falling_mg_l_h > 0
                and trend <= -p.falling_mg_l_h and do < p.off_above_mg_l):
            rate = _num(-trend)
            return True, "do_falling", {
                "zh": f"溶解氧 {d} mg/L 正以每小时 {rate} mg/L 的速度下降，提前开启",
                "en": f"DO {d} mg/L falling {rate} mg/L per hour: switch on early"}
        if do >= p.off_above_mg_l:
            return False, "do_recovered", {
                "zh": f"溶解氧 {d} mg/L 已达关闭点 {_num(p.off_above_mg_l)}",
                "en": f"DO {d} mg/L at or above the off point {_num(p.off_above_mg_l)}"}
        keep = bool(self.demand)
        return keep, "hysteresis", {
            "zh": f"溶解氧 {d} mg/L 介于开启点 {_num(p.on_below_mg_l)} 与关闭点 "
                  f"{_num(p.off_above_mg_l)} 之间，保持{'开启' if keep else '关闭'}",
            "en": f"DO {d} mg/L between the on point {_num(p.on_below_mg_l)} and the off point "
                  f"{_num(p.off_above_mg_l)}: stay {'on' if keep else 'off'}"}

    def _fallback(self, now: float, why: str) -> tuple[bool, str, dict[str, str]]:
        p = self.p
        dusk, dawn = p.night.dusk_dawn(now)
        night = p.night.is_night(now)
        cause = why or "no usable DO reading"
        return night, "fallback_night" if night else "fallback_day", {
            "zh": f"溶解氧未知（{cause}），按计划运行：{'夜间曝气' if night else '白天停机'}"
                  f"（夜间 {_hm(dusk)}–{_hm(dawn)}）",
            "en": f"DO unknown ({cause}): on schedule, {'night aeration' if night else 'off by day'} "
                  f"(night {_hm(dusk)}-{_hm(dawn)})"}

    def _fountain_window(self, now: float) -> str | None:
        hour = self.p.night.local_hour(now)
        for a, b in self.p.fountain_hours:
            if in_windows(hour, ((a, b),)):
                return f"{_hm(a)}–{_hm(b)}"
        return None

    # -- decisions -------------------------------------------------------------------------
    def decide(self, now: float, do_mg_l: float | None, unknown_why: str = "",
               overrides: Mapping[str, Override] | None = None,
               trend_mg_l_h: float | None = None,
               downstream: tuple[str, float] | None = None) -> list[Decision]:
        """One decision per aerator at ``now``; ``do_mg_l`` None means the segment's DO is unknown.

        ``trend_mg_l_h`` is the segment's DO rate of change (negative: falling), when known;
        ``downstream`` is (segment, DO) of the reach below under normal flow, when known.
        """
        overrides = overrides or {}
        if do_mg_l is None:
            want, rule, reason = self._fallback(now, unknown_why)
            mode = "fallback"
        else:
            want, rule, reason = self._demand(now, do_mg_l, trend_mg_l_h, downstream)
            self.demand = want
            mode = "auto"
        out = []
        for a in self.aerators:
            ov = overrides.get(a.node)
            if ov is not None and ov.mode in ("on", "off") and ov.until > now:
                out.append(self._manual(a, ov, now, do_mg_l))
                continue
            a_want, a_rule, a_reason = want, rule, reason
            window = self._fountain_window(now) if a.kind == FOUNTAIN else None
            if window and not want:
                a_want, a_rule = True, "fountain_hours"
                a_reason = {"zh": f"喷泉运行时段 {window}（水体流动与景观）",
                            "en": f"fountain hours {window} (flow and looks)"}
            out.append(self._apply(a, a_want, mode, a_rule, a_reason, now, do_mg_l))
        return out

    def _manual(self, a: Aerator, ov: Override, now: float, do: float | None) -> Decision:
        on = ov.mode == "on"
        st = self.switch[a.node]
        changed = st.on is not on
        if changed:
            st.on, st.since = on, now
        tz = self.p.night.timezone
        reason = {"zh": f"人工{'开启' if on else '关闭'}（{ov.by}，至 {_clock(ov.until, tz)}）",
                  "en": f"manual {'on' if on else 'off'} by {ov.by} until {_clock(ov.until, tz)}"}
        return Decision(a.node, self.segment, on, changed, "manual", "override", reason, do)

    def _apply(self, a: Aerator, want: bool, mode: str, rule: str, reason: dict[str, str],
               now: float, do: float | None) -> Decision:
        st = self.switch[a.node]
        if st.on is None or st.on is not want:
            held = now - st.since
            if st.on is True and held < self.p.min_on_s:
                return Decision(a.node, self.segment, True, False, mode, "hold_min_on", {
                    "zh": f"保持开启：最短运行 {_num(self.p.min_on_s / 60)} 分钟未到（{reason['zh']}）",
                    "en": f"kept on: minimum on time {_num(self.p.min_on_s / 60)} min not reached "
                          f"({reason['en']})"}, do)
            if st.on is False and held < self.p.min_off_s:
                return Decision(a.node, self.segment, False, False, mode, "hold_min_off", {
                    "zh": f"保持关闭：最短停机 {_num(self.p.min_off_s / 60)} 分钟未到（{reason['zh']}）",
                    "en": f"kept off: minimum off time {_num(self.p.min_off_s / 60)} min not reached "
                          f"({reason['en']})"}, do)
            st.on, st.since = want, now
            return Decision(a.node, self.segment, want, True, mode, rule, reason, do)
        return Decision(a.node, self.segment, want, False, mode, rule, reason, do)

    def forget(self, node: str) -> None:
        """Forget what ``node`` was told (its command could not be sent): the next decision resends."""
        if node in self.switch:
            self.switch[node] = _Switch()

    def state(self) -> dict[str, Any]:
        """What the controller remembers (for logs and the panel)."""
        return {"segment": self.segment, "demand": self.demand,
                "aerators": {n: {"on": s.on, "since": s.since if s.on is not None else None}
                             for n, s in self.switch.items()}}
