// Zixly pages: draws the charts whose data the server embedded in the page, with uPlot.
// A chart is <figure class="chart" data-chart="ID"> plus <script type="application/json" id="ID">:
//   {"x": [unix seconds...], "symbol": "$", "bars": false,
//    "series": [{"label": "Revenue", "color": "#2546c4", "values": [..], "money": true, "unit": null}]}
// Values arrive as strings (exact decimals) and are shown exactly in the tooltip.
(function () {
  "use strict";

  function group(intPart) {
    return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // Formats an exact decimal string: money with its symbol and 2 decimals, else as given.
  function fmt(raw, s, spec) {
    if (raw === null || raw === undefined) return "–";
    var str = String(raw), neg = str.charAt(0) === "-";
    if (neg) str = str.slice(1);
    var parts = str.split(".");
    var frac = parts[1] || "";
    if (s.money) {
      frac = (frac + "00").slice(0, Math.max(2, frac.replace(/0+$/, "").length));
      return (neg ? "−" : "") + spec.symbol + group(parts[0]) + "." + frac;
    }
    var out = group(parts[0]) + (frac.replace(/0+$/, "") ? "." + frac.replace(/0+$/, "") : "");
    return (neg ? "−" : "") + out + (s.unit ? " " + s.unit : "");
  }

  function axisFmt(v, spec, money) {
    var a = Math.abs(v), t;
    if (a >= 1e9) t = (v / 1e9).toFixed(1).replace(/\.0$/, "") + "B";
    else if (a >= 1e6) t = (v / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
    else if (a >= 1e3) t = (v / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
    else t = String(Math.round(v * 100) / 100);
    if (t.charAt(0) === "-") return "−" + (money ? spec.symbol : "") + t.slice(1);
    return (money ? spec.symbol : "") + t;
  }

  function dateLabel(ts, spec) {
    var d = new Date(ts * 1000);
    var opts = { timeZone: "UTC", year: "numeric", month: "short" };
    if (spec.bucket !== "month") opts.day = "numeric";
    var label = d.toLocaleDateString("en-AU", opts);
    return spec.bucket === "week" ? "Week of " + label : label;
  }

  function tooltipPlugin(spec) {
    var tip;
    return {
      hooks: {
        init: function (u) {
          tip = document.createElement("div");
          tip.className = "tip";
          tip.setAttribute("role", "status");
          tip.style.display = "none";
          u.over.appendChild(tip);
          u.over.addEventListener("mouseleave", function () { tip.style.display = "none"; });
        },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i === null || i === undefined) { tip.style.display = "none"; return; }
          var html = "<b>" + dateLabel(u.data[0][i], spec) + "</b>";
          spec.series.forEach(function (s) {
            html += "<div><i style=\"background:" + s.color + "\"></i>" + s.label +
              "<span class=\"v\">" + fmt(s.values[i], s, spec) + "</span></div>";
          });
          tip.innerHTML = html;
          tip.style.display = "block";
          var left = u.cursor.left, w = tip.offsetWidth, ow = u.over.clientWidth;
          tip.style.left = Math.max(0, Math.min(left + 12, ow - w)) + "px";
          tip.style.top = Math.max(0, (u.cursor.top || 0) - tip.offsetHeight - 8) + "px";
        }
      }
    };
  }

  function draw(el) {
    var src = document.getElementById(el.getAttribute("data-chart"));
    if (!src || typeof uPlot === "undefined") return;
    var spec = JSON.parse(src.textContent);
    var money = spec.series.some(function (s) { return s.money; });
    var data = [spec.x].concat(spec.series.map(function (s) {
      return s.values.map(function (v) { return v === null ? null : Number(v); });
    }));
    var bars = spec.bars && uPlot.paths && uPlot.paths.bars;
    var series = [{}].concat(spec.series.map(function (s, k) {
      var o = { label: s.label, stroke: s.color, width: 2, points: { show: spec.x.length < 60, size: 5, fill: s.color } };
      if (bars && k < 2) {
        o.paths = uPlot.paths.bars({ size: [0.6 / 2, 40], align: k === 0 ? -1 : 1 });
        o.fill = s.color; o.points = { show: false };
      }
      return o;
    }));
    var height = el.classList.contains("small") ? 180 : 280;
    var opts = {
      width: Math.max(el.clientWidth, 200), height: height,
      series: series, legend: { show: false },
      cursor: { points: { size: 8 }, drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#545f70", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#dde1e7" } },
        { stroke: "#545f70", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#dde1e7" }, size: 64,
          values: function (u, vals) { return vals.map(function (v) { return axisFmt(v, spec, money); }); } }
      ],
      plugins: [tooltipPlugin(spec)]
    };
    var u = new uPlot(opts, data, el);
    el._uplot = u;
    el.setAttribute("data-points", String(spec.x.length));
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var w = Math.max(el.clientWidth, 200);
        if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height: height });
      }).observe(el);
    }
  }

  function init() {
    document.querySelectorAll("[data-chart]").forEach(draw);
    // One-time links carry their token in the fragment (never sent to servers): copy it into
    // the form, then drop it from the address bar.
    var hash = new URLSearchParams(location.hash.slice(1));
    document.querySelectorAll("input[data-from-fragment]").forEach(function (i) {
      var v = hash.get(i.getAttribute("data-from-fragment"));
      if (v && !i.value) { i.value = v; history.replaceState(null, "", location.pathname); }
    });
    // Forms that want a confirmation before a destructive action.
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
