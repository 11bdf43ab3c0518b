/* Fleet view for operators: nodes, last seen, battery, seq gaps, rejects, unregistered nodes. */
"use strict";

(function () {
  function td(text, cls) { return RM.el("td", { text: text, className: cls || "" }); }

  function render(body) {
    var rows = body.nodes.map(function (n) {
      var gaps = n.seq ? n.seq.missing + " / " + n.seq.expected : "—";
      return RM.el("tr", { "data-node": n.id, className: n.online ? "" : "node-offline" }, [
        td(n.id + (n.registered ? "" : " ⚠") + " · " + n.kind),
        td(n.segment),
        td(RM.t(n.online ? "online" : "offline"), n.online ? "online" : "offline-txt"),
        td(n.last_seen ? RM.clock(n.last_seen) + " (" + RM.age(n.last_seen) + ")" : "—"),
        td(RM.fmt(n.battery_v, 2), "num"), td(gaps, "num"), td(n.fw || "—")]);
    });
    document.querySelector("#fleet-table tbody").replaceChildren.apply(document.querySelector("#fleet-table tbody"), rows);
    var un = document.getElementById("unregistered");
    un.replaceChildren.apply(un, body.unregistered.length ? body.unregistered.map(function (id) {
      return RM.el("li", { text: id });
    }) : [RM.el("li", { text: RM.t("none") })]);
    var reasons = Object.keys(body.rejects_by_reason).sort();
    var rt = document.getElementById("rejects-by-reason");
    rt.replaceChildren(RM.el("tbody", {}, reasons.length ? reasons.map(function (r) {
      return RM.el("tr", {}, [td(r), td(String(body.rejects_by_reason[r]), "num")]);
    }) : [RM.el("tr", {}, [td(RM.t("none"))])]));
    var recent = document.querySelector("#recent-rejects tbody");
    recent.replaceChildren.apply(recent, body.recent_rejects.map(function (r) {
      return RM.el("tr", {}, [td(RM.clock(r.time)), td(r.node || "—"), td(r.reason || ""),
        RM.el("td", {}, [RM.el("div", { text: r.detail || "" }), RM.el("div", { className: "payload", text: r.payload || "" })])]);
    }));
  }

  function load() { RM.getJSON("/api/fleet").then(render).catch(RM.showError); }
  load();
  setInterval(load, 30000);
})();
