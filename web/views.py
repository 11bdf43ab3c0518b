"""The panel's pages: creek view, segment detail, alert inbox, trends and compliance, fleet."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, g, render_template, request

from rivermon.core.alerts import KIND_NAMES
from rivermon.core.influx import InfluxError

from . import aerators, i18n, schematic
from .auth import role_required
from .status import DO_BANDS

bp = Blueprint("views", __name__)
log = logging.getLogger("rivermon.web.views")


def ctx() -> Any:
    return current_app.extensions["rivermon"]


def _shapes() -> dict[str, Any]:
    """The schematic of the first creek, built once per app."""
    c = ctx()
    if getattr(c, "shapes", None) is None:
        c.shapes = schematic.build(c.topology.creeks[0])
    return c.shapes


def _segments_now() -> dict[str, dict[str, Any]]:
    try:
        snap = ctx().hub.segments()
    except InfluxError as exc:
        log.warning("segments unavailable for the page", extra={"error": str(exc)})
        return {}
    return {s["id"]: s for s in snap["segments"]}


def bands_json() -> list[dict[str, Any]]:
    """The DO bands for charts (clipped to a plotting range)."""
    return [{"id": b, "low": max(lo, 0.0), "high": min(hi, 20.0), "name": name}
            for b, lo, hi, name in DO_BANDS]


def _seg_names(creek: Any) -> dict[str, dict[str, str]]:
    return {s.id: s.name.as_dict() for s in creek.segments}


def _aerator_args(creek: Any, seg: str | None) -> dict[str, Any]:
    """What the aerator cards need: rows (state, mode, last command) and who may give orders."""
    c = ctx()
    user = g.get("user")
    if user is None:  # the public creek view shows aerators' state only (from the schematic)
        return {"rows": [], "can_operate": False, "durations": aerators.DURATIONS_MIN,
                "controller_running": True, "seg": seg}
    try:
        rows = aerators.aerator_rows(c, creek, seg)
    except InfluxError as exc:
        log.warning("aerator state unavailable for the page", extra={"error": str(exc)})
        rows = []
    return {"rows": rows, "can_operate": user.can("operator"), "durations": aerators.DURATIONS_MIN,
            "controller_running": aerators.controller_alive(c), "seg": seg}


@bp.route("/")
@role_required("viewer", public_if="web_public_view")
def creek() -> str:
    c = ctx()
    creek = c.topology.creeks[0]
    segs = _segments_now()
    ordered = [s for s in creek.flow_order()]
    return render_template("creek.html", creek=creek, shapes=_shapes(), segs=segs,
                           ordered=ordered, texts=i18n.js_texts(), aer=_aerator_args(creek, None))


@bp.route("/aerators/panel")
@role_required("viewer")
def aerators_panel() -> str:
    """The aerator cards alone (the pages refresh them with this after an order)."""
    creek = ctx().topology.creeks[0]
    seg = request.args.get("segment") or None
    if seg is not None and seg not in {s.id for s in creek.segments}:
        abort(404, description=f"no segment {seg[:40]!r}")
    return render_template("aerators_fragment.html", **_aerator_args(creek, seg))


@bp.route("/segment/<seg>")
@role_required("viewer")
def segment(seg: str) -> str:
    creek = ctx().topology.creeks[0]
    known = {s.id: s for s in creek.segments}
    if seg not in known:
        abort(404, description=f"no segment {seg!r}")
    return render_template("segment.html", creek=creek, seg=known[seg], segs=_segments_now(),
                           texts=i18n.js_texts(), seg_names=_seg_names(creek), bands_json=bands_json(),
                           aer=_aerator_args(creek, seg))


@bp.route("/inbox")
@role_required("viewer")
def inbox() -> str:
    creek = ctx().topology.creeks[0]
    return render_template("inbox.html", creek=creek, kinds=KIND_NAMES, texts=i18n.js_texts(),
                           single=None, seg_names=_seg_names(creek))


@bp.route("/alerts/<aid>")
@role_required("viewer")
def alert_page(aid: str) -> str:
    """One alert (the link notifications carry)."""
    creek = ctx().topology.creeks[0]
    return render_template("inbox.html", creek=creek, kinds=KIND_NAMES, texts=i18n.js_texts(),
                           single=aid, seg_names=_seg_names(creek))


@bp.route("/trends")
@role_required("viewer")
def trends() -> str:
    creek = ctx().topology.creeks[0]
    try:
        fields = ctx().queries.fields() or ["do_mg_l", "turbidity_ntu"]
    except InfluxError:
        fields = ["do_mg_l", "turbidity_ntu", "temp_c"]
    return render_template("trends.html", creek=creek, fields=fields, texts=i18n.js_texts(),
                           seg_names=_seg_names(creek), bands_json=bands_json())


@bp.route("/fleet")
@role_required("operator")
def fleet() -> str:
    return render_template("fleet.html", texts=i18n.js_texts())
