/* Aerator cards (state, mode, last command) and the operator's manual orders.
   The server renders the cards (templates/_aerators.html); this script sends orders and
   refreshes the cards from /aerators/panel, the same template, so there is one renderer. */
"use strict";

var RMAerators = (function () {
  var wrap = document.getElementById("aer-wrap");
  if (!wrap) return { refresh: function () {} };
  var seg = wrap.getAttribute("data-seg") || "";
  var busy = false, pending = null, listeners = [];

  function refresh() {
    var url = "/aerators/panel" + (seg ? "?segment=" + encodeURIComponent(seg) : "");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("aer-cards");
        if (!fresh || busy) return;
        var keep = {};  // keep each card's chosen time limit across the refresh
        wrap.querySelectorAll('[data-role="minutes"]').forEach(function (s) {
          keep[s.closest("[data-node]").getAttribute("data-node")] = s.value;
        });
        fresh.querySelectorAll('[data-role="minutes"]').forEach(function (s) {
          var v = keep[s.closest("[data-node]").getAttribute("data-node")];
          if (!v) return;
          // importNode copies attributes, not a select's current value: mark the option itself
          Array.prototype.forEach.call(s.options, function (o) {
            if (o.value === v) o.setAttribute("selected", ""); else o.removeAttribute("selected");
          });
        });
        wrap.replaceChildren(document.importNode(fresh, true));
        listeners.forEach(function (f) { f(); });
      }).catch(RM.showError);
  }

  function later(ms) {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, ms);
  }

  wrap.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-order]");
    if (!b || b.disabled) return;
    var card = b.closest("[data-node]");
    var node = card.getAttribute("data-node");
    var mode = b.getAttribute("data-order");
    var body = { mode: mode };
    if (mode !== "auto") body.minutes = Number(card.querySelector('[data-role="minutes"]').value);
    card.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
    busy = true;
    RM.post("/api/aerators/" + encodeURIComponent(node) + "/cmd", body)
      .then(function (res) { if (res.warning) RM.showError(res.warning); })
      .catch(RM.showError)
      .then(function () { busy = false; refresh(); later(4000); });  // again once it confirms
  });

  setInterval(refresh, 20000);
  return { refresh: refresh, later: later, onRefresh: function (f) { listeners.push(f); } };
})();
