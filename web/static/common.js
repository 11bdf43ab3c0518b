/* rivermon panel: shared helpers (texts, fetch with CSRF, time formatting, live stream). */
"use strict";

var RM = (function () {
  function json(id) {
    var el = document.getElementById(id);
    try { return el ? JSON.parse(el.textContent) : {}; } catch (e) { return {}; }
  }
  var texts = json("texts");
  var page = json("page-info");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function t(key) { return texts[key] || key; }
  function pick(pair) {
    if (!pair) return "";
    return (page.lang === "en" ? pair.en || pair.zh : pair.zh || pair.en) || "";
  }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "className") e.className = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || r.status);
          return body;
        });
      });
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (b) { if (!r.ok) throw new Error(b.error || r.status); return b; });
    });
  }
  function age(iso) {
    if (!iso) return "—";
    var s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 60) return t("just_now");
    if (s < 3600) return Math.round(s / 60) + " " + t("mins_ago");
    if (s < 86400) return Math.round(s / 3600) + " " + t("hours_ago");
    return Math.round(s / 86400) + " " + t("days_ago");
  }
  function clock(iso) {
    if (!iso) return "—";
    var d = new Date(Date.parse(iso));
    var opts = { hour12: false, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
    if (page.tz) opts.timeZone = page.tz;  // the creek's time, wherever the reader is
    return d.toLocaleString(page.lang === "en" ? "en-GB" : "zh-CN", opts);
  }
  function fmt(v, digits) {
    return (v === null || v === undefined) ? "—" : Number(v).toFixed(digits);
  }

  /* Server-Sent Events with reconnection: EventSource retries by itself on network errors;
     when the server closes for good (it answered an error) we reopen with backoff. */
  function live(handlers) {
    var es = null, delay = 1000, conn = document.getElementById("conn"), dot = document.getElementById("live-dot");
    function open() {
      es = new EventSource("/api/stream");
      es.onopen = function () { delay = 1000; if (conn) conn.hidden = true; if (dot) dot.classList.add("on"); };
      es.onerror = function () {
        if (conn) conn.hidden = false;
        if (dot) dot.classList.remove("on");
        if (es.readyState === EventSource.CLOSED) {
          setTimeout(open, delay);
          delay = Math.min(delay * 2, 30000);
        }
      };
      Object.keys(handlers).forEach(function (name) {
        es.addEventListener(name, function (ev) {
          var data;
          try { data = JSON.parse(ev.data); } catch (e) { return; }
          handlers[name](data);
        });
      });
    }
    open();
    window.addEventListener("beforeunload", function () { if (es) es.close(); });
  }

  function navCount(n) {
    var b = document.getElementById("nav-alert-count");
    if (!b) return;
    b.textContent = n;
    b.hidden = !n;
  }

  function showError(err) {
    var box = document.getElementById("page-error");
    if (!box) return;
    box.textContent = t("error") + ": " + (err && err.message ? err.message : err);
    box.hidden = false;
  }

  return { showError: showError, t: t, pick: pick, el: el, getJSON: getJSON, post: post, age: age, clock: clock, fmt: fmt,
           live: live, page: page, navCount: navCount };
})();
