/* Trends and compliance: a series over a day to a year with zoom, DO class shares and alert
   statistics for two periods side by side, CSV exports. */
"use strict";

(function () {
  var form = document.getElementById("trend-form");
  var chart = RMCharts.create(document.getElementById("trend-chart"));
  var segNames = JSON.parse(document.getElementById("segment-names").textContent);
  var bands = RMCharts.bands();
  var params = new URLSearchParams(location.search);
  ["segment", "field", "span", "end", "compare"].forEach(function (k) {
    if (params.get(k) && form.elements[k]) form.elements[k].value = params.get(k);
  });

  function period() {
    var span = Number(form.elements.span.value);
    var endDay = form.elements.end.value;
    var end = endDay ? Date.parse(endDay + "T23:59:59+08:00") / 1000 : Date.now() / 1000;
    end = Math.min(end, Date.now() / 1000);
    var start = end - span;
    var shift = form.elements.compare.value === "year" ? 365 * 86400 : span;
    return { a: [start, end], b: [start - shift, end - shift] };
  }

  function qs(obj) { return new URLSearchParams(obj).toString(); }
  function range(p) { return RM.clock(new Date(p[0] * 1000).toISOString()) + " – " + RM.clock(new Date(p[1] * 1000).toISOString()); }
  function pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%"; }
  function dur(s) {
    if (s === null || s === undefined) return "—";
    return s < 3600 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h";
  }

  function loadSeries(p) {
    var seg = form.elements.segment.value, field = form.elements.field.value;
    var q = { segment: seg, field: field, start: p.a[0].toFixed(0), end: p.a[1].toFixed(0) };
    var qb = { segment: seg, field: field, start: p.b[0].toFixed(0), end: p.b[1].toFixed(0) };
    var offset = (p.a[0] - p.b[0]) * 1000;
    chart.showLoading();
    Promise.all([RM.getJSON("/api/series?" + qs(q)), RM.getJSON("/api/series?" + qs(qb))]).then(function (both) {
      var body = both[0];
      chart.hideLoading();
      document.getElementById("series-title").textContent = (segNames[seg] ? RM.pick(segNames[seg]) : seg) +
        " · " + form.elements.field.options[form.elements.field.selectedIndex].text + " · " + (body.interval_s >= 3600 ? body.interval_s / 3600 + " h" : body.interval_s / 60 + " min");
      // Period B drawn dashed on period A's time axis, so the two compare at a glance.
      var lines = RMCharts.fromApi(body).map(function (l, i) { l.name = "A " + l.name; l.colour = i; return l; });
      RMCharts.fromApi(both[1]).forEach(function (l, i) {
        lines.push({ name: "B " + l.name, points: l.points, dashed: true, offset_ms: offset, colour: i });
      });
      chart.setOption(RMCharts.option(lines, { doBands: field === "do_mg_l", zoom: true, unit: body.unit }), true);
    }).catch(RM.showError);
    document.getElementById("csv-series").href = "/export/series.csv?" + qs(q);
    document.getElementById("csv-alerts").href = "/export/alerts.csv?" + qs({ start: q.start, end: q.end });
  }

  function compliance(p, tableId, labelId) {
    document.getElementById(labelId).textContent = range(p);
    RM.getJSON("/api/compliance?" + qs({ start: p[0].toFixed(0), end: p[1].toFixed(0) })).then(function (body) {
      var table = document.getElementById(tableId);
      var headRow = RM.el("tr", {}, [RM.el("th", { text: RM.t("segment") })].concat(
        bands.map(function (b) { return RM.el("th", { text: RM.pick(b.name) }); }),
        [RM.el("th", { text: RM.t("samples") })]));
      var rows = body.segments.map(function (s) {
        return RM.el("tr", { "data-seg": s.segment }, [RM.el("td", { text: s.segment })].concat(
          bands.map(function (b) { return RM.el("td", { className: "num", text: pct(s.share[b.id]) }); }),
          [RM.el("td", { className: "num", text: String(s.samples) })]));
      });
      table.replaceChildren(RM.el("thead", {}, [headRow]), RM.el("tbody", {}, rows));
    }).catch(RM.showError);
  }

  function stats(p, boxId) {
    RM.getJSON("/api/alert-stats?" + qs({ start: p[0].toFixed(0), end: p[1].toFixed(0) })).then(function (body) {
      var box = document.getElementById(boxId);
      var rows = Object.keys(body.by_kind).sort().map(function (k) {
        return RM.el("tr", {}, [RM.el("td", { text: RM.pick(body.kinds[k]) || k }), RM.el("td", { className: "num", text: String(body.by_kind[k]) })]);
      });
      rows.unshift(RM.el("tr", {}, [RM.el("th", { text: RM.t("count") }), RM.el("th", { className: "num", text: String(body.total) })]));
      rows.push(RM.el("tr", {}, [RM.el("td", { text: RM.t("time_to_ack") }), RM.el("td", { className: "num", text: dur(body.mean_time_to_ack_s) })]));
      rows.push(RM.el("tr", {}, [RM.el("td", { text: RM.t("time_to_resolve") }), RM.el("td", { className: "num", text: dur(body.mean_time_to_resolve_s) })]));
      box.replaceChildren(RM.el("table", {}, [RM.el("tbody", {}, rows)]));
    }).catch(RM.showError);
  }

  function load() {
    var p = period();
    loadSeries(p);
    compliance(p.a, "comp-a", "period-a");
    compliance(p.b, "comp-b", "period-b");
    stats(p.a, "stats-a");
    stats(p.b, "stats-b");
  }

  form.addEventListener("change", function () {
    var q = new URLSearchParams();
    ["segment", "field", "span", "end", "compare"].forEach(function (k) { if (form.elements[k].value) q.set(k, form.elements[k].value); });
    history.replaceState(null, "", "?" + q.toString());
    load();
  });
  load();
})();
