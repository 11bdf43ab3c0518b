/* Segment detail: latest per node, charts (24 h / 7 d) with DO bands, alerts, aerators. */
"use strict";

(function () {
  var head = document.getElementById("seg-head");
  var seg = head.getAttribute("data-seg");
  var list = document.getElementById("alerts");
  var canAct = list.getAttribute("data-can-act") === "true";
  var canOperate = RM.page.role === "operator" || RM.page.role === "admin";
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
    var aerators = document.querySelector("#aerators-table tbody");
    sensors.replaceChildren();
    aerators.replaceChildren();
    body.nodes.forEach(function (n) {
      if (n.kind === "aerator") {
        var on = n.latest.aerator_on ? n.latest.aerator_on.value : null;
        var row = RM.el("tr", { "data-node": n.id }, [
          cell(n.id + " (" + (n.aerator || "") + ")"),
          cell(on === null ? "—" : RM.t(on ? "aerator_on" : "aerator_off"), on ? "online" : ""),
          cell(val(n.latest, "power_w", 0), "num"), cell(RM.fmt(n.rated_w, 0), "num")]);
        var td = RM.el("td");
        if (canOperate) {
          [true, false].forEach(function (want) {
            var b = RM.el("button", { type: "button", className: "btn", text: RM.t(want ? "turn_on" : "turn_off") });
            b.addEventListener("click", function () {
              b.disabled = true;
              RM.post("/api/aerators/" + encodeURIComponent(n.id) + "/cmd", { aerator_on: want })
                .then(function () { setTimeout(loadDetail, 1000); }).catch(showError)
                .then(function () { b.disabled = false; });
            });
            td.appendChild(b);
          });
        }
        row.appendChild(td);
        aerators.appendChild(row);
      } else {
        sensors.appendChild(RM.el("tr", { "data-node": n.id }, [
          cell(n.id), cell(val(n.latest, "do_mg_l", 2), "num"), cell(val(n.latest, "turbidity_ntu", 1), "num"),
          cell(val(n.latest, "temp_c", 1), "num"), cell(val(n.latest, "battery_v", 2), "num"),
          cell(RM.age(newest(n.latest)))]));
      }
    });
    RMAlerts.replaceList(list, body.alerts, { canAct: canAct, onChange: loadDetail, onError: showError });
    document.getElementById("no-alerts").hidden = body.alerts.length > 0;
    var cmds = document.getElementById("commands");
    cmds.replaceChildren.apply(cmds, body.commands.map(function (c) {
      return RM.el("li", { text: RM.clock(c.received_at) + " · " + c.node + " → " +
        RM.t(c.aerator_on ? "aerator_on" : "aerator_off") + (c.reason ? " · " + c.reason : "") });
    }));
    if (!body.commands.length) cmds.appendChild(RM.el("li", { text: RM.t("none") }));
    if (body.segment) setStatus(body.segment.status);
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

  loadDetail();
  loadCharts();
  setInterval(loadCharts, 60000);
  var pending = null;
  RM.live({
    segments: function (snap) {
      (snap.segments || []).forEach(function (s) { if (s.id === seg) setStatus(s.status); });
    },
    alert: function (ev) {
      if (ev.segment !== seg || pending) return;
      pending = setTimeout(function () { pending = null; loadDetail(); }, 300);
    }
  });
})();
