/* Alert inbox: most urgent first, filters, live updates, actions. */
"use strict";

(function () {
  var list = document.getElementById("alerts");
  var empty = document.getElementById("no-alerts");
  var errBox = document.getElementById("inbox-error");
  var canAct = list.getAttribute("data-can-act") === "true";
  var form = document.getElementById("filters");
  var params = new URLSearchParams(location.search);
  ["state", "segment", "kind"].forEach(function (k) {
    if (params.get(k)) {
      form.elements[k].value = params.get(k);
      document.getElementById("filter-box").open = true;  // show the filters that are in effect
    }
  });
  var pending = null;

  function showError(err) {
    errBox.textContent = RM.t("error") + ": " + err.message;
    errBox.hidden = false;
  }

  var single = form.getAttribute("data-single");

  function load() {
    if (single) {
      RM.getJSON("/api/alerts/" + encodeURIComponent(single)).then(function (a) {
        errBox.hidden = true;
        RMAlerts.replaceList(list, [a], { canAct: canAct, onChange: load, onError: showError });
        empty.hidden = true;
      }).catch(showError);
      return;
    }
    var state = form.elements.state.value, segment = form.elements.segment.value, kind = form.elements.kind.value;
    var q = new URLSearchParams({ state: state, sort: "urgent", limit: "300" });
    if (segment) q.set("segment", segment);
    if (kind && kind.charAt(0) !== "@") q.set("kind", kind);
    RM.getJSON("/api/alerts?" + q.toString()).then(function (body) {
      errBox.hidden = true;
      var alerts = body.alerts;
      if (kind === "@water") alerts = alerts.filter(function (a) { return a.audience !== "equipment"; });
      if (kind === "@equipment") alerts = alerts.filter(function (a) { return a.audience === "equipment"; });
      RMAlerts.replaceList(list, alerts, { canAct: canAct, onChange: load, onError: showError });
      empty.hidden = alerts.length > 0;
    }).catch(showError);
  }

  function soon() {
    // Several events in a burst cost one reload.
    if (pending) return;
    pending = setTimeout(function () { pending = null; load(); }, 300);
  }

  form.addEventListener("change", function () {
    var q = new URLSearchParams();
    ["state", "segment", "kind"].forEach(function (k) { if (form.elements[k].value) q.set(k, form.elements[k].value); });
    history.replaceState(null, "", "?" + q.toString());
    load();
  });
  load();
  RM.live({
    alert: soon,
    segments: function (snap) {
      var n = 0;
      (snap.segments || []).forEach(function (s) { n += s.open_alerts || 0; });
      RM.navCount(n);
    }
  });
})();
