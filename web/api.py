"""The panel's JSON face: the contract's API plus what the views need (SSE, actions, exports).

Every parameter that reaches a query is validated here first (segment against the topology,
field and node against the contract's grammar, times parsed), and refused with a 400 that
names the parameter.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import statistics
import time
from typing import Any, Iterator

from flask import Blueprint, Response, current_app, g, jsonify, request

from rivermon.core import aeration
from rivermon.core.alerts import AlertError, AlertNotFound, InvalidTransition, KIND_NAMES, STATES
from rivermon.core.reading import KNOWN_FIELDS
from rivermon.core.topology import UNASSIGNED

from .aerators import DURATIONS_MIN, aerator_rows, apply_order, controller_alive, parse_order, recent
from .auth import role_required
from .queries import check_field, check_id
from .status import DO_BANDS, sort_alerts
from .timeutil import BadParam, iso, parse_range

bp = Blueprint("api", __name__)
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ALERT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
KEEPALIVE_S = 15.0


def ctx() -> Any:
    return current_app.extensions["rivermon"]


# ---- parameter validation -------------------------------------------------------------------

def creek_and_segment(raw: str | None, required: bool = True) -> tuple[str, str | None]:
    """The creek id and a segment id the topology knows (or ``unassigned``)."""
    topo = ctx().topology
    creek_id = request.args.get("creek") or topo.creeks[0].id
    creek = topo.creek(check_id("creek", creek_id))
    if creek is None:
        raise BadParam("creek", f"{creek_id!r} is not a creek of this topology")
    if raw is None or raw == "":
        if required:
            raise BadParam("segment", "is required (a segment id from /api/topology)")
        return creek.id, None
    check_id("segment", raw)
    if raw != UNASSIGNED and raw not in {s.id for s in creek.segments}:
        raise BadParam("segment", f"{raw!r} is not a segment of {creek.id}")
    return creek.id, raw


def opt_kind(raw: str | None) -> str | None:
    if not raw:
        return None
    if not KIND_RE.fullmatch(raw):
        raise BadParam("kind", f"{raw[:40]!r} is not an alert kind")
    return raw


def opt_state(raw: str | None) -> str | None:
    if not raw or raw == "all":
        return None
    if raw not in (*STATES, "active"):
        raise BadParam("state", f"{raw[:40]!r} is not one of {', '.join(STATES)}, active, all")
    return raw


def opt_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(name, f"{raw[:20]!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParam(name, f"must be between {low} and {high}")
    return value


def alert_id(raw: str) -> str:
    if not ALERT_ID_RE.fullmatch(raw):
        raise BadParam("id", f"{raw[:40]!r} is not an alert id")
    return raw


# ---- the contract's endpoints ---------------------------------------------------------------

@bp.route("/api/topology")
@role_required("viewer", public_if="web_public_view")
def topology() -> Any:
    return jsonify(ctx().topology.to_api())


@bp.route("/api/segments")
@role_required("viewer", public_if="web_public_view")
def segments() -> Any:
    return Response(ctx().hub.segments_json(), mimetype="application/json")


@bp.route("/api/alerts")
@role_required("viewer")
def alerts() -> Any:
    creek, segment = creek_and_segment(request.args.get("segment"), required=False)
    state = opt_state(request.args.get("state"))
    kind = opt_kind(request.args.get("kind"))
    since = until = None
    if request.args.get("start") or request.args.get("end"):
        since, until = parse_range(request.args.get("start"), request.args.get("end"), 30 * 86400)
    limit = opt_int("limit", request.args.get("limit"), 500, 1, 10000)
    events = ctx().alerts.events(state, segment, kind, since, until, limit)
    if request.args.get("sort") == "urgent":
        events = sort_alerts(events)
    return jsonify({"alerts": events, "kinds": KIND_NAMES})


@bp.route("/api/series")
@role_required("viewer")
def series() -> Any:
    creek, segment = creek_and_segment(request.args.get("segment"))
    field = check_field(request.args.get("field") or "")
    node = request.args.get("node") or None
    if node is not None:
        check_id("node", node)
    start, end = parse_range(request.args.get("start"), request.args.get("end"), 86400)
    agg = ctx().aggregator
    result = ctx().queries.series(creek, segment, field, start, end, node=node,
                                  use_agg=bool(agg and agg.ready))
    unit = KNOWN_FIELDS.get(field, ("",))[0]
    return jsonify({"creek": creek, "segment": segment, "field": field, "unit": unit,
                    "start": iso(start), "end": iso(end), **result})


# ---- live stream -------------------------------------------------------------------------

@bp.route("/api/stream")
@role_required("viewer", public_if="web_public_view")
def stream() -> Response:
    hub = ctx().hub
    private = g.get("user") is not None
    metrics = ctx().metrics

    def events() -> Iterator[str]:
        q = hub.subscribe(private)
        metrics.inc("rivermon_web_sse_connections_total")
        try:
            yield "retry: 3000\n\n"
            yield _sse("segments", hub.segments())
            while not hub.stopping and not getattr(q, "dropped", False):
                try:
                    item = q.get(timeout=KEEPALIVE_S)
                except queue.Empty:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    break
                yield _sse(*item)
        finally:
            hub.unsubscribe(q)

    return Response(events(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


# ---- alert actions -------------------------------------------------------------------------

@bp.route("/api/alerts/<aid>")
@role_required("viewer")
def alert_detail(aid: str) -> Any:
    try:
        return jsonify(ctx().alerts.get(alert_id(aid)))
    except AlertNotFound as exc:
        return jsonify(error=str(exc)), 404


@bp.route("/api/alerts/<aid>/<action>", methods=["POST"])
@role_required("cleaner")
def alert_action(aid: str, action: str) -> Any:
    if action not in ("acknowledge", "note", "resolve"):
        return jsonify(error=f"action {action[:20]!r} is not acknowledge, note or resolve"), 404
    data = request.get_json(silent=True) if request.is_json else request.form
    note = str((data or {}).get("note", ""))[:2000]
    try:
        event = ctx().alerts.act(alert_id(aid), action, g.user.name, note)
    except AlertNotFound as exc:
        return jsonify(error=str(exc)), 404
    except InvalidTransition as exc:
        return jsonify(error=str(exc)), 409
    except AlertError as exc:
        return jsonify(error=str(exc)), 400
    ctx().metrics.inc("rivermon_web_alert_actions_total", action=action)
    ctx().hub.broadcast("alert", event, private=True)
    ctx().hub.wake()
    return jsonify(event)


# ---- segment detail, compliance, fleet ---------------------------------------------------------

@bp.route("/api/segment/<seg>")
@role_required("viewer")
def segment_detail(seg: str) -> Any:
    creek_id, seg = creek_and_segment(seg)
    c = ctx()
    creek = c.topology.creek(creek_id)
    latest = c.queries.latest_by_node(creek_id, seg)
    tz = creek.timezone
    nodes = []
    known = [n for n in creek.nodes if n.segment == seg]
    ids = [n.id for n in known] + sorted(set(latest) - {n.id for n in known})
    for node_id in ids:
        n = creek.node(node_id)
        vals = latest.get(node_id, {})
        nodes.append({
            "id": node_id, "kind": n.kind if n else "unknown", "chainage_m": n.chainage_m if n else None,
            "aerator": n.aerator if n else None, "rated_w": n.rated_w if n else None,
            "latest": {f: {"value": v.value, "time": iso(v.ts_s, tz)} for f, v in vals.items()},
        })
    alerts = sort_alerts(c.alerts.events("active", seg))
    commands = [cmd for cmd in c.hub.commands if cmd.get("node") in {n.id for n in known}][:20]
    for cmd in commands:
        cmd["received_at"] = iso(cmd.get("received"), tz)
    segment = next((s for s in c.hub.segments()["segments"] if s["id"] == seg), None)
    control = recent(c, creek, seg)
    return jsonify({"segment": segment, "nodes": nodes, "alerts": alerts, "commands": commands,
                    "aerators": aerator_rows(c, creek, seg), "command_log": control["commands"],
                    "orders": control["orders"], "controller_running": controller_alive(c),
                    "durations_min": list(DURATIONS_MIN),
                    "bands": [{"id": b, "low": max(lo, 0.0), "high": min(hi, 20.0), "name": name}
                              for b, lo, hi, name in DO_BANDS]})


@bp.route("/api/compliance")
@role_required("viewer")
def compliance() -> Any:
    creek, _ = creek_and_segment(None, required=False)
    start, end = parse_range(request.args.get("start"), request.args.get("end"), 30 * 86400)
    agg = ctx().aggregator
    counts = ctx().queries.do_band_counts(creek, start, end, use_agg=bool(agg and agg.ready))
    out = []
    for seg in ctx().topology.creek(creek).segments:
        c = counts.get(seg.id, {})
        total = sum(c.values())
        out.append({"segment": seg.id, "name": seg.name.as_dict(), "samples": total,
                    "share": {b: (c.get(b, 0) / total if total else None) for b, *_ in DO_BANDS}})
    return jsonify({"start": iso(start), "end": iso(end), "segments": out,
                    "bands": [{"id": b, "name": name} for b, _, _, name in DO_BANDS]})


@bp.route("/api/alert-stats")
@role_required("viewer")
def alert_stats() -> Any:
    start, end = parse_range(request.args.get("start"), request.args.get("end"), 30 * 86400)
    rows = ctx().alerts.raw(since=start, until=end)
    by_kind: dict[str, int] = {}
    by_segment: dict[str, int] = {}
    ack, res = [], []
    for a in rows:
        by_kind[a.kind] = by_kind.get(a.kind, 0) + 1
        by_segment[a.segment] = by_segment.get(a.segment, 0) + 1
        if a.acknowledged_at:
            ack.append(a.acknowledged_at - a.start)
        if a.resolved_at:
            res.append(a.resolved_at - a.start)
    return jsonify({"start": iso(start), "end": iso(end), "total": len(rows), "by_kind": by_kind,
                    "by_segment": by_segment,
                    "mean_time_to_ack_s": statistics.fmean(ack) if ack else None,
                    "mean_time_to_resolve_s": statistics.fmean(res) if res else None,
                    "median_time_to_resolve_s": statistics.median(res) if res else None,
                    "kinds": KIND_NAMES})


@bp.route("/api/fleet")
@role_required("operator")
def fleet() -> Any:
    c = ctx()
    creek = c.topology.creeks[0]
    now = time.time()
    latest = c.queries.latest_by_node(creek.id)
    status = c.queries.node_status(creek.id)
    seq = c.queries.seq_stats(creek.id, now - 86400, now + 300)
    unregistered = c.queries.unregistered_nodes(creek.id)
    nodes = []
    for node_id in [n.id for n in creek.nodes] + [u for u in unregistered if creek.node(u) is None]:
        n = creek.node(node_id)
        vals = latest.get(node_id, {})
        seen = max((v.ts_s for v in vals.values() if v.ts_s), default=None)
        st = status.get(node_id, {})
        online = st.get("state") != "offline" and seen is not None and now - seen <= c.cfg.web_offline_after_s
        nodes.append({
            "id": node_id, "kind": n.kind if n else "unknown",
            "segment": n.segment if n else UNASSIGNED, "registered": n is not None,
            "last_seen": iso(seen, creek.timezone), "age_s": round(now - seen) if seen else None,
            "online": online, "status": st.get("state"), "fw": st.get("fw"),
            "battery_v": vals["battery_v"].value if "battery_v" in vals else None,
            "aerator_on": vals["aerator_on"].value if "aerator_on" in vals else None,
            "power_w": vals["power_w"].value if "power_w" in vals else None,
            "seq": seq.get(node_id),
        })
    return jsonify({"nodes": nodes, "unregistered": unregistered,
                    "rejects_by_reason": c.queries.reject_counts(now - 86400, now + 300),
                    "recent_rejects": [dict(r, time=iso(r["time"] / 1000, creek.timezone))
                                       for r in c.queries.recent_rejects(30)]})


@bp.route("/api/aerators")
@role_required("viewer")
def aerators_list() -> Any:
    """Every aerator (or a segment's): state, mode with its order, last command."""
    creek_id, seg = creek_and_segment(request.args.get("segment"), required=False)
    creek = ctx().topology.creek(creek_id)
    return jsonify({"aerators": aerator_rows(ctx(), creek, seg),
                    "controller_running": controller_alive(ctx()),
                    "durations_min": list(DURATIONS_MIN)})


@bp.route("/api/aerators/<node>/cmd", methods=["POST"])
@role_required("operator")
def aerator_cmd(node: str) -> Any:
    """A manual order (on/off for some minutes, or auto), kept in the shared override store."""
    c = ctx()
    check_id("node", node)
    n = next((x for x in c.topology.all_nodes() if x.id == node), None)
    if n is None or not n.is_aerator:
        return jsonify(error=f"{node!r} is not an aerator of this topology"), 404
    data = request.get_json(silent=True) if request.is_json else request.form
    if data is not None and not hasattr(data, "get"):
        return jsonify(error="the body must be a JSON object"), 400
    mode, minutes = parse_order(dict(data or {}))
    try:
        result = apply_order(c, n, mode, minutes, g.user.name)
    except aeration.ControlError as exc:
        return jsonify(error=str(exc)), 400
    c.metrics.inc("rivermon_web_aerator_orders_total", mode=mode)
    return jsonify(result)


# ---- CSV exports -------------------------------------------------------------------------------

@bp.route("/export/series.csv")
@role_required("viewer")
def export_series() -> Response:
    creek, segment = creek_and_segment(request.args.get("segment"))
    field = check_field(request.args.get("field") or "")
    start, end = parse_range(request.args.get("start"), request.args.get("end"), 86400)
    rows = ctx().queries.raw_rows(creek, segment, field, start, end)
    tz = ctx().topology.creek(creek).timezone
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["time", "node", "segment", field])
    for ts_ms, node, value in rows:
        w.writerow([iso(ts_ms / 1000, tz), node, segment, value])
    return _csv(buf.getvalue(), f"{segment}-{field}.csv")


@bp.route("/export/alerts.csv")
@role_required("viewer")
def export_alerts() -> Response:
    _, segment = creek_and_segment(request.args.get("segment"), required=False)
    start, end = parse_range(request.args.get("start"), request.args.get("end"), 30 * 86400)
    events = ctx().alerts.events(None, segment, opt_kind(request.args.get("kind")), start, end, None)
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ["id", "creek", "segment", "node", "kind", "severity", "state", "start", "end",
            "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at"]
    w.writerow(cols + ["summary_zh", "summary_en", "notes"])
    for e in events:
        notes = " | ".join(f"{n['at']} {n['by']}: {n['text']}" for n in e.get("notes") or [])
        w.writerow([_cell(e.get(c)) for c in cols]
                   + [_cell(e["summary"].get("zh")), _cell(e["summary"].get("en")), _cell(notes)])
    return _csv(buf.getvalue(), "alerts.csv")


def _cell(value: Any) -> str:
    """CSV cell text; a leading = + - @ is quoted away so spreadsheets never run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(text: str, name: str) -> Response:
    return Response("\ufeff" + text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
