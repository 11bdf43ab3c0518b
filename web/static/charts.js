/* Time-series charts on Apache ECharts (vendored, web/static/echarts-5.6.0.min.js). */
"use strict";

var RMCharts = (function () {
  var BAND_COLOURS = {
    I: "rgba(64,140,255,0.16)", II: "rgba(40,170,90,0.16)", III: "rgba(150,200,60,0.18)",
    IV: "rgba(255,200,40,0.22)", V: "rgba(255,140,40,0.24)",
    bo_light: "rgba(220,40,40,0.22)", bo_severe: "rgba(120,0,0,0.32)"
  };
  var LINE_COLOURS = ["#0a4dab", "#c00000", "#1b7a32", "#7a3db8", "#b35c00", "#222"];

  function bands() {
    var el = document.getElementById("do-bands");
    try { return el ? JSON.parse(el.textContent) : []; } catch (e) { return []; }
  }

  function markArea(withBands) {
    if (!withBands) return undefined;
    return {
      silent: true,
      label: { position: "insideRight", color: "#333", fontSize: 12 },
      data: bands().map(function (b) {
        return [{ yAxis: b.low, name: RM.pick(b.name), itemStyle: { color: BAND_COLOURS[b.id] } }, { yAxis: b.high }];
      })
    };
  }

  function create(el) {
    var chart = echarts.init(el, null, { renderer: "canvas" });
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }

  /* series: [{name, points: [[ts_ms, mean, min, max], ...]}]; opts: {doBands, zoom, unit, yMax} */
  // Charts label time in the creek's zone: shift by its offset and let ECharts draw UTC.
  var shift = (RM.page.tz_offset_s || 0) * 1000;

  function option(series, opts) {
    opts = opts || {};
    var out = series.map(function (s, i) {
      return {
        name: s.name, type: "line", showSymbol: false, sampling: "lttb",
        lineStyle: { width: s.dashed ? 1.5 : 2.5, type: s.dashed ? "dashed" : "solid", opacity: s.dashed ? 0.7 : 1 },
        color: LINE_COLOURS[(s.colour !== undefined ? s.colour : i) % LINE_COLOURS.length],
        data: s.points.map(function (p) { return [p[0] + (s.offset_ms || 0) + shift, p[1]]; }),
        markArea: i === 0 ? markArea(opts.doBands) : undefined
      };
    });
    if (!out.length && opts.doBands) {
      out.push({ name: "", type: "line", data: [], markArea: markArea(true) });
    }
    var o = {
      animation: false, useUTC: true,
      grid: { left: 44, right: 12, top: 34, bottom: opts.zoom ? 70 : 30, containLabel: false },
      tooltip: { trigger: "axis", valueFormatter: function (v) { return v === null ? "—" : Number(v).toFixed(2) + " " + (opts.unit || ""); } },
      legend: { top: 0, textStyle: { fontSize: 13 } },
      xAxis: { type: "time", axisLabel: { fontSize: 12, hideOverlap: true } },
      yAxis: { type: "value", scale: !opts.doBands, min: opts.doBands ? 0 : undefined,
               max: opts.doBands ? function (v) { return Math.max(10, Math.ceil(v.max)); } : undefined,
               axisLabel: { fontSize: 12 } },
      series: out
    };
    if (opts.zoom) {
      o.dataZoom = [{ type: "inside" }, { type: "slider", height: 28, bottom: 8 }];
    }
    return o;
  }

  function fromApi(body) {
    return (body.series || []).map(function (s) { return { name: s.node, points: s.points }; });
  }

  return { create: create, option: option, fromApi: fromApi, bands: bands };
})();
