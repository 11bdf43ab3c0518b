/* Alert cards with acknowledge / note / resolve (inbox and segment detail). */
"use strict";

var RMAlerts = (function () {
  var segNames = (function () {
    var el = document.getElementById("segment-names");
    try { return el ? JSON.parse(el.textContent) : {}; } catch (e) { return {}; }
  })();

  function evidenceText(ev) {
    if (!ev || typeof ev !== "object") return "";
    return Object.keys(ev).map(function (k) {
      var v = ev[k];
      if (typeof v === "object") v = JSON.stringify(v);
      return k + ": " + v;
    }).join(" · ");
  }

  function who(label, by, at) {
    if (!by) return null;
    return RM.el("div", { className: "alert-who" }, [RM.el("b", { text: label + ": " }), by + " · " + RM.clock(at)]);
  }

  function render(a, opts) {
    var equipment = a.audience === "equipment";
    var li = RM.el("li", {
      className: "alert sev-" + a.severity + " state-" + a.state + (equipment ? " equipment" : " water"),
      id: "alert-" + a.id, "data-id": a.id, "data-state": a.state
    });
    var head = RM.el("div", { className: "alert-head" }, [
      RM.el("span", { className: "tag tag-" + a.severity, text: RM.t("sev_" + a.severity) }),
      RM.el("span", { className: "tag " + (equipment ? "tag-equipment" : "tag-water"),
                      text: RM.t(equipment ? "equipment_fault" : "water_event") }),
      RM.el("span", { className: "tag tag-info", text: RM.pick(a.kind_name) || a.kind }),
      RM.el("span", { className: "tag tag-info", "data-role": "state", text: RM.t("state_" + a.state) })
    ]);
    li.appendChild(head);
    li.appendChild(RM.el("div", { className: "alert-summary", text: RM.pick(a.summary) || a.kind }));
    var seg = segNames[a.segment] ? RM.pick(segNames[a.segment]) + " (" + a.segment + ")" : a.segment;
    li.appendChild(RM.el("div", { className: "alert-meta",
      text: RM.t("segment") + " " + seg + (a.node ? " · " + RM.t("node") + " " + a.node : "") +
            " · " + RM.t("start") + " " + RM.clock(a.start) + " (" + RM.age(a.start) + ")" +
            (a.end ? " · " + RM.t("end") + " " + RM.clock(a.end) : "") }));
    [who(RM.t("acknowledged_by"), a.acknowledged_by, a.acknowledged_at),
     who(RM.t("resolved_by"), a.resolved_by, a.resolved_at)].forEach(function (w) { if (w) li.appendChild(w); });
    if (a.notes && a.notes.length) {
      var ul = RM.el("ul", { className: "notes" });
      a.notes.forEach(function (n) { ul.appendChild(RM.el("li", { text: n.by + " · " + RM.clock(n.at) + ": " + n.text })); });
      li.appendChild(ul);
    }
    var ev = evidenceText(a.evidence);
    if (ev) {
      var det = RM.el("details", { className: "evidence" }, [RM.el("summary", { text: RM.t("evidence") }), RM.el("div", { text: ev })]);
      li.appendChild(det);
    }
    if (opts && opts.canAct && a.state !== "resolved") li.appendChild(actions(a, opts));
    return li;
  }

  function actions(a, opts) {
    var box = RM.el("div", { className: "alert-action-box" });
    var note = RM.el("textarea", { placeholder: RM.t("note_placeholder"), "aria-label": RM.t("add_note"),
                                   maxlength: "2000", rows: "2", id: "note-" + a.id });
    var row = RM.el("div", { className: "alert-actions" });
    function button(action, label, cls) {
      var b = RM.el("button", { type: "button", className: "btn " + cls, "data-action": action, text: label });
      b.addEventListener("click", function () {
        b.disabled = true;
        RM.post("/api/alerts/" + encodeURIComponent(a.id) + "/" + action, { note: note.value })
          .then(function (updated) { if (opts.onChange) opts.onChange(updated); })
          .catch(function (err) { b.disabled = false; if (opts.onError) opts.onError(err); });
      });
      return b;
    }
    if (a.state === "open") row.appendChild(button("acknowledge", RM.t("acknowledge"), "btn-ack"));
    row.appendChild(button("note", "✎ " + RM.t("add_note"), ""));
    row.appendChild(button("resolve", "✓ " + RM.t("resolve"), "btn-resolve"));
    box.appendChild(note);
    box.appendChild(row);
    return box;
  }

  /* Replace the list's alerts, keeping what a cleaner is typing: live updates must never wipe
     a half-written note or move a button from under a thumb when nothing changed. */
  function replaceList(list, alerts, opts) {
    var key = JSON.stringify(alerts) + (opts.canAct ? "1" : "0");
    if (list.getAttribute("data-key") === key) return;
    var notes = {};
    list.querySelectorAll("textarea").forEach(function (t) { if (t.value) notes[t.id] = t.value; });
    var focused = document.activeElement && document.activeElement.id;
    list.replaceChildren.apply(list, alerts.map(function (a) { return render(a, opts); }));
    list.setAttribute("data-key", key);
    Object.keys(notes).forEach(function (id) {
      var t = document.getElementById(id);
      if (t) t.value = notes[id];
    });
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }

  return { render: render, replaceList: replaceList };
})();
