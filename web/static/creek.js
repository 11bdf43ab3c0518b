/* Creek view: recolour segments and refresh cards from the live stream. */
"use strict";

(function () {
  var STATUSES = ["ok", "warning", "critical", "offline", "unknown"];

  function setStatus(node, prefix, status) {
    STATUSES.forEach(function (s) { node.classList.remove(prefix + s); });
    node.classList.add(prefix + status);
  }

  function updateSegment(s) {
    var line = document.getElementById("seg-line-" + s.id);
    if (line) { setStatus(line, "seg-", s.status); line.setAttribute("data-status", s.status); }
    var card = document.getElementById("card-" + s.id);
    if (!card) return;
    setStatus(card, "status-", s.status);
    card.setAttribute("data-status", s.status);
    card.querySelector('[data-role="status"]').textContent = RM.t("status_" + s.status);
    card.querySelector('[data-role="do"]').textContent = RM.fmt(s.do_mg_l, 1);
    card.querySelector('[data-role="turb"]').textContent = RM.fmt(s.turbidity_ntu, 0);
    var upd = card.querySelector('[data-role="updated"]');
    upd.setAttribute("data-time", s.updated || "");
    upd.textContent = RM.t("updated") + " " + RM.age(s.updated);
    var al = card.querySelector('[data-role="alerts"]');
    al.hidden = !s.open_alerts;
    al.querySelector("b").textContent = s.open_alerts;
    var top = card.querySelector('[data-role="top"]');
    top.hidden = !s.top_alert;
    top.textContent = s.top_alert ? RM.pick(s.top_alert.summary) || RM.t(s.top_alert.kind) : "";
  }

  function updateAerators(aerators) {
    Object.keys(aerators || {}).forEach(function (id) {
      var g = document.querySelector('.node-aerator[data-node="' + CSS.escape(id) + '"]');
      if (!g) return;
      g.classList.remove("aer-on", "aer-off", "aer-unknown");
      var on = aerators[id].aerator_on;
      g.classList.add(on === true ? "aer-on" : on === false ? "aer-off" : "aer-unknown");
    });
  }

  var RANK = { critical: 0, warning: 1, offline: 2 };

  /* One line at the top naming the segments that need someone, worst first. */
  function updateAttention(segments) {
    var box = document.getElementById("attention");
    var bad = segments.filter(function (s) { return s.status in RANK; })
      .sort(function (a, b) { return RANK[a.status] - RANK[b.status]; });
    box.hidden = !bad.length;
    if (!bad.length) return;
    box.className = "attention attention-" + bad[0].status;
    box.replaceChildren.apply(box, bad.map(function (s) {
      return RM.el("span", { text: "⚠ " + RM.pick(s.name) + " · " + RM.t("status_" + s.status) });
    }));
  }

  function updateNodes(nodes) {
    document.querySelectorAll("circle.node-sensor").forEach(function (c) {
      var n = (nodes || {})[c.getAttribute("data-node")];
      c.classList.toggle("node-off", !n || !n.online);
    });
  }

  function onSegments(snap) {
    var open = 0;
    (snap.segments || []).forEach(function (s) { updateSegment(s); open += s.open_alerts || 0; });
    updateAttention(snap.segments || []);
    updateAerators(snap.aerators);
    if (window.RMAerators && RMAerators.later) RMAerators.later(1000);  // refresh the aerator cards
    updateNodes(snap.nodes);
    RM.navCount(open);
  }

  var toastTimer = null;
  function onAlert(ev) {
    if (ev.state !== "open") return;
    var toast = document.getElementById("toast");
    if (!toast) {
      toast = RM.el("a", { id: "toast", className: "toast", href: "/inbox" });
      document.body.appendChild(toast);
    }
    toast.textContent = "⚠ " + (RM.pick(ev.kind_name) || ev.kind) + " · " + ev.segment + " · " + RM.pick(ev.summary);
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.hidden = true; }, 15000);
  }

  document.querySelectorAll('[data-role="updated"]').forEach(function (u) {
    var iso = u.getAttribute("data-time");
    u.textContent = RM.t("updated") + " " + RM.age(iso || null);
  });
  RM.live({ segments: onSegments, alert: onAlert });
  setInterval(function () {
    document.querySelectorAll('[data-role="updated"]').forEach(function (u) {
      u.textContent = RM.t("updated") + " " + RM.age(u.getAttribute("data-time") || null);
    });
  }, 30000);
})();
