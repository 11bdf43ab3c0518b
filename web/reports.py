"""The office's documents from the panel: the monthly compliance report (the same figures and
page as ``rivermon report``) and the work-order export (as ``rivermon workorders``)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from rivermon.core.report import month_report
from rivermon.core.workorders import workorder_rows, workorders_csv, workorders_json

from .auth import role_required
from .timeutil import BadParam, parse_range

bp = Blueprint("reports", __name__)
MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
REPORT_TTL_S = 300.0  # a month's figures change slowly; the page is asked for again and again
# The report page is a standalone printable document with its own <style>; still no script.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _month() -> str:
    month = request.args.get("month", "")
    if not MONTH_RE.fullmatch(month):
        raise BadParam("month", f"{month[:20]!r} is not a month like 2026-11")
    return month


@bp.route("/report")
@role_required("viewer")
def report() -> Any:
    """``?month=YYYY-MM[&format=html|csv|json]``; without a month, the form."""
    ctx = current_app.extensions["rivermon"]
    if not request.args.get("month"):
        return render_template("report_form.html")
    month = _month()
    fmt = request.args.get("format", "html")
    if fmt not in ("html", "csv", "json"):
        raise BadParam("format", f"{fmt[:10]!r} is not html, csv or json")
    creek = ctx.topology.creeks[0]
    try:
        rep = ctx.queries.cache.get(("report", creek.id, month), REPORT_TTL_S,
                                    lambda: month_report(ctx.influx, creek, month, ctx.alerts.store))
    except ValueError as exc:  # a month that has not started
        raise BadParam("month", str(exc)) from None
    if fmt == "csv":
        return Response("\ufeff" + rep.csv(), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="report-{month}.csv"'})
    if fmt == "json":
        return current_app.json.response(rep.as_dict())
    resp = Response(rep.html(), mimetype="text/html")
    resp.headers["Content-Security-Policy"] = REPORT_CSP
    return resp


@bp.route("/export/workorders.<fmt>")
@role_required("viewer")
def workorders(fmt: str) -> Any:
    """Alerts as patrol work orders (``?start=&end=``, default the last 30 days)."""
    if fmt not in ("csv", "json"):
        return current_app.json.response({"error": "format must be csv or json"}), 404
    ctx = current_app.extensions["rivermon"]
    start, end = parse_range(request.args.get("start"), request.args.get("end"), 30 * 86400)
    creek = ctx.topology.creeks[0]
    rows = workorder_rows(ctx.alerts.raw(since=start, until=end), creek, creek.timezone)
    if fmt == "csv":
        return Response("\ufeff" + workorders_csv(rows), mimetype="text/csv", headers={
            "Content-Disposition": 'attachment; filename="workorders.csv"'})
    return Response(workorders_json(rows, {"creek": creek.id, "start": start, "end": end}),
                    mimetype="application/json")
