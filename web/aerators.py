"""Aerators on the panel: state from telemetry, mode from the overrides, last command from the log.

The command log and the manual overrides live in ``rivermon.core.aeration`` (shared with
``rivermon control``). A manual order from the panel is stored there; the controller applies it
on its next tick. While no controller is running (no heartbeat), the panel publishes the
command itself so the button still works, and logs it in the same command log.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rivermon.core import aeration
from rivermon.core.reading import cmd_topic

from .timeutil import BadParam, iso

# The time limits the panel offers (minutes); the API accepts any whole number of minutes up
# to the store's limit of 7 days.
DURATIONS_MIN = (30, 120, 480)
DEFAULT_MIN = 120
MAX_MIN = int(aeration.MAX_OVERRIDE_S // 60)


def controller_alive(ctx: Any, now: float | None = None) -> bool:
    """Whether a controller ticked recently enough to apply an order by itself."""
    window = max(6 * float(ctx.cfg.control_tick_s), 30.0)
    return aeration.controller_alive(var=ctx.cfg.var, max_age_s=window, now=now)


def parse_order(data: dict[str, Any]) -> tuple[str, int | None]:
    """``(mode, minutes)`` from a request body; ``aerator_on`` (the contract's form) means on/off."""
    mode = data.get("mode")
    if mode is None and "aerator_on" in data:
        raw = data.get("aerator_on")
        if raw not in (True, False, "true", "false", "1", "0"):
            raise BadParam("aerator_on", "must be true or false")
        mode = "on" if raw in (True, "true", "1") else "off"
    if mode not in aeration.OVERRIDE_MODES:
        raise BadParam("mode", f"{str(mode)[:20]!r} is not one of on, off, auto")
    if mode == "auto":
        return mode, None
    raw_min = data.get("minutes", DEFAULT_MIN)
    try:
        minutes = int(raw_min)
        if isinstance(raw_min, bool) or float(raw_min) != minutes:
            raise ValueError
    except (TypeError, ValueError):
        raise BadParam("minutes", f"{str(raw_min)[:20]!r} is not a whole number of minutes") from None
    if not 1 <= minutes <= MAX_MIN:
        raise BadParam("minutes", f"must be between 1 and {MAX_MIN} (7 days)")
    return mode, minutes


def apply_order(ctx: Any, node: Any, mode: str, minutes: int | None, by: str) -> dict[str, Any]:
    """Store the order; publish it directly when no controller is running. Returns what happened."""
    now = time.time()
    until = now + minutes * 60 if minutes else None
    order = aeration.set_override(node.id, mode, until, by, var=ctx.cfg.var, now=now)
    result: dict[str, Any] = {"node": node.id, "override": _order_json(order, ctx),
                              "applied_by": "controller", "sent": None}
    if controller_alive(ctx, now):
        return result
    client = ctx.hub.client
    if client is None:
        result["applied_by"] = "pending"
        result["warning"] = ("no controller and no broker connection: the order is stored and "
                             "applies when the controller runs")
        return result
    if mode == "auto":
        # No controller to hand back to: the aerator's own timer takes over (contract extension).
        payload: dict[str, Any] = {"aerator_on": None, "mode": "auto"}
    else:
        payload = {"aerator_on": mode == "on", "control_mode": "manual", "rule": "override_direct"}
    payload.update(reason=f"人工操作 {by} / manual: {by}", ts=round(now, 3), by=by)
    client.publish(cmd_topic(ctx.cfg.topic_prefix, node.creek, node.id),
                   json.dumps(payload, ensure_ascii=False).encode(), qos=1)
    if mode != "auto":
        aeration.log_manual_command(creek=node.creek, segment=node.segment, node=node.id,
                                    aerator_on=mode == "on", by=by, var=ctx.cfg.var, ts=now)
    result.update(applied_by="panel", sent=payload)
    return result


def aerator_rows(ctx: Any, creek: Any, segment: str | None = None) -> list[dict[str, Any]]:
    """Each aerator of the creek (or segment): state, mode and last command, ready for JSON."""
    tz = creek.timezone
    nodes = [n for n in creek.nodes if n.is_aerator and (segment is None or n.segment == segment)]
    if not nodes:
        return []
    latest = ctx.queries.latest_by_node(creek.id, segment)
    states = aeration.aerator_states(var=ctx.cfg.var)
    rows = []
    for n in nodes:
        vals = latest.get(n.id, {})
        st = states.get(n.id, {})
        on = vals.get("aerator_on")
        power = vals.get("power_w")
        cmd = st.get("last_command")
        rows.append({
            "node": n.id, "segment": n.segment, "aerator": n.aerator, "rated_w": n.rated_w,
            "aerator_on": bool(on.value) if on is not None else None,
            "power_w": power.value if power is not None else None,
            "time": iso(max(v.ts_s for v in (on, power) if v is not None), tz)
            if (on or power) else None,
            "mode": _mode(st),
            "override": _order_json(st.get("override"), ctx),
            "last_command": _command_json(cmd, tz) if cmd else None,
        })
    return rows


def recent(ctx: Any, creek: Any, segment: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
    """The segment's command log and its aerators' order log, newest first."""
    tz = creek.timezone
    ids = {n.id for n in creek.nodes if n.is_aerator and n.segment == segment}
    cmds = aeration.recent_commands(segment, var=ctx.cfg.var, limit=limit)
    orders = [o for o in aeration.override_log(var=ctx.cfg.var, limit=500) if o["node"] in ids]
    return {"commands": [_command_json(c, tz) for c in cmds],
            "orders": [dict(o, set_at=iso(o["set_at"], tz), until=iso(o["until"], tz))
                       for o in orders[:limit]]}


def _mode(state: dict[str, Any]) -> str:
    """``manual_on``/``manual_off`` while an order is in force, else the controller's mode."""
    ov = state.get("override")
    if ov:
        return f"manual_{ov['mode']}"
    cmd = state.get("last_command")
    mode = cmd["mode"] if cmd else "auto"
    return "auto" if mode == "manual" else mode  # a manual command whose order ended


def _order_json(order: dict[str, Any] | None, ctx: Any) -> dict[str, Any] | None:
    if not order:
        return None
    tz = ctx.topology.creeks[0].timezone
    return {"mode": order["mode"], "until": iso(order["until"], tz) if order.get("until") else None,
            "by": order["by"], "set_at": iso(order["set_at"], tz)}


def _command_json(cmd: dict[str, Any], tz: str) -> dict[str, Any]:
    return {"time": iso(cmd["ts"], tz), "node": cmd["node"], "segment": cmd["segment"],
            "aerator_on": cmd["aerator_on"], "mode": cmd["mode"], "rule": cmd["rule"],
            "reason": cmd["reason"], "do_mg_l": cmd["do_mg_l"]}
