/* Segment detail: latest per node, charts (24 h / 7 d) with DO bands, alerts, aerators. */
"use strict";

(function () {
  var head = document.getElementById("seg-head");
  var seg = head.getAttribute("data-seg");
  var list = document.getElementById("alerts");
  var canAct = list.getAttribute("data-can-act") === "true";
  var span = 86400;
  var doChart = RMCharts.create(document.getElementById("chart-do"));
  var turbChart = RMCharts.create(document.getElementById("chart-turbidity"));

  function cell(text, cls) { return RM.el("td", { text: text, className: cls || "" }); }
  function val(latest, field, digits) {
    var v = latest[field];
    return v ? RM.fmt(v.value, digits) : "—";
  }
  function newest(latest) {
    var best = null;
    Object.keys(latest).forEach(function (f) {
      var t = latest[f].time;
      if (t && (!best || Date.parse(t) > Date.parse(best))) best = t;
    });
    return best;
  }

  var showError = RM.showError;

  function renderDetail(body) {
    var sensors = document.querySelector("#nodes-table tbody");
    sensors.replaceChildren();
    body.nodes.forEach(function (n) {
      if (n.kind === "aerator") return;  // aerators have their own cards (aerators.js)
      sensors.appendChild(RM.el("tr", { "data-node": n.id }, [
        cell(n.id), cell(val(n.latest, "do_mg_l", 2), "num"), cell(val(n.latest, "turbidity_ntu", 1), "num"),
        cell(val(n.latest, "temp_c", 1), "num"), cell(val(n.latest, "battery_v", 2), "num"),
        cell(RM.age(newest(n.latest)))]));
    });
    RMAlerts.replaceList(list, body.alerts, { canAct: canAct, onChange: loadDetail, onError: showError });
    document.getElementById("no-alerts").hidden = body.alerts.length > 0;
    renderCommands(body);
    if (body.segment) setStatus(body.segment.status);
  }

  /* The command log (the controller's reasons, zh/en), else the cmd messages the panel saw. */
  function renderCommands(body) {
    var cmds = document.getElementById("commands");
    var log = body.command_log || [];
    var items = log.length ? log.map(function (c) {
      return RM.el("li", { text: RM.clock(c.time) + " · " + c.node + " → " +
        RM.t(c.aerator_on ? "aerator_on" : "aerator_off") + " · " + RM.t("mode_" + (c.mode === "manual" ? "manual_" + (c.aerator_on ? "on" : "off") : c.mode)) +
        " · " + RM.pick(c.reason) });
    }) : body.commands.map(function (c) {
      return RM.el("li", { text: RM.clock(c.received_at) + " · " + c.node + " → " +
        RM.t(c.aerator_on ? "aerator_on" : "aerator_off") + (c.reason ? " · " + c.reason : "") });
    });
    cmds.replaceChildren.apply(cmds, items);
    if (!items.length) cmds.appendChild(RM.el("li", { text: RM.t("none") }));
    var orders = document.getElementById("orders");
    orders.replaceChildren.apply(orders, (body.orders || []).map(function (o) {
      var what = o.mode === "auto" ? RM.t("set_auto") : RM.t("mode_manual_" + o.mode) + " " + RM.t("until") + " " + RM.clock(o.until);
      return RM.el("li", { text: RM.clock(o.set_at) + " · " + o.node + " · " + what + " · " + RM.t("by") + " " + o.by });
    }));
    if (!(body.orders || []).length) orders.appendChild(RM.el("li", { text: RM.t("none") }));
  }

  function setStatus(status) {
    ["ok", "warning", "critical", "offline", "unknown"].forEach(function (s) { head.classList.remove("status-" + s); });
    head.classList.add("status-" + status);
    head.querySelector('[data-role="status"]').textContent = RM.t("status_" + status);
  }

  function loadDetail() {
    RM.getJSON("/api/segment/" + encodeURIComponent(seg)).then(renderDetail).catch(showError);
  }

  function loadCharts() {
    var end = Date.now() / 1000, start = end - span;
    var q = "&segment=" + encodeURIComponent(seg) + "&start=" + start.toFixed(0) + "&end=" + end.toFixed(0);
    doChart.showLoading();
    RM.getJSON("/api/series?field=do_mg_l" + q).then(function (body) {
      doChart.hideLoading();
      doChart.setOption(RMCharts.option(RMCharts.fromApi(body), { doBands: true, unit: "mg/L" }), true);
    }).catch(showError);
    turbChart.showLoading();
    RM.getJSON("/api/series?field=turbidity_ntu" + q).then(function (body) {
      turbChart.hideLoading();
      turbChart.setOption(RMCharts.option(RMCharts.fromApi(body), { unit: "NTU" }), true);
    }).catch(showError);
  }

  document.querySelectorAll(".chart-tabs .btn").forEach(function (b) {
    b.addEventListener("click", function () {
      document.querySelectorAll(".chart-tabs .btn").forEach(function (x) { x.classList.remove("sel"); });
      b.classList.add("sel");
      span = Number(b.getAttribute("data-span"));
      loadCharts();
    });
  });

  if (RMAerators.onRefresh) RMAerators.onRefresh(loadDetail);  // an order: show it in the logs
  loadDetail();
  loadCharts();
  setInterval(loadCharts, 60000);
  var pending = null;
  RM.live({
    segments: function (snap) {
      (snap.segments || []).forEach(function (s) { if (s.id === seg) setStatus(s.status); });
      RMAerators.later(1000);  // new telemetry: aerator state may have changed
    },
    alert: function (ev) {
      if (ev.segment !== seg || pending) return;
      pending = setTimeout(function () { pending = null; loadDetail(); }, 300);
    }
  });
})();
