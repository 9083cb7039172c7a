// Zixly pages: draws the charts whose data the server embedded in the page, with uPlot.
// A chart is <figure class="chart" data-chart="ID"> plus <script type="application/json" id="ID">:
//   {"x": [bucket first days, unix seconds at UTC midnight], "partial": [bool per bucket],
//    "from": unix, "to": unix (exclusive), "bucket": "day"|"week"|"month", "bars": true,
//    "symbol": "$", "series": [{"label": "Revenue", "color": "#2546c4", "values": ["12.5", null, ..],
//                                "money": true, "unit": null}]}
// The server sends every bucket of the range; null is a gap (no records), never joined across.
// Values arrive as strings (exact decimals) and are shown exactly in the tooltip.
// Dates are calendar days: every date computation here reads the UTC fields of x, so a browser
// west of UTC no longer shows 1 Nov as 31 Oct (uPlot's time axis formats in local time).
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

  // Fixed English (AU) month abbreviations: `Sep`, not the ICU-dependent `Sept`.
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function day(ts) {
    var d = new Date(ts * 1000);
    return { y: d.getUTCFullYear(), m: d.getUTCMonth(), d: d.getUTCDate() };
  }

  // Axis labels in AU style: `Jan 2026` for months, `3 Feb` for days and weeks.
  function tickLabel(ts, spec) {
    var p = day(ts);
    return spec.bucket === "month" ? MONTHS[p.m] + " " + p.y : p.d + " " + MONTHS[p.m];
  }

  // The tooltip's title: the bucket's days inside the range, and whether it is incomplete.
  function bucketLabel(i, spec) {
    var a = day(spec.x[i]), b = day((i + 1 < spec.x.length ? spec.x[i + 1] : spec.to) - 86400);
    var text;
    if (spec.bucket === "day") text = a.d + " " + MONTHS[a.m] + " " + a.y;
    else if (spec.bucket === "month" && a.d === 1) text = MONTHS[a.m] + " " + a.y;
    else if (a.m === b.m && a.y === b.y) text = a.d + "–" + b.d + " " + MONTHS[a.m] + " " + a.y;
    else text = a.d + " " + MONTHS[a.m] + " – " + b.d + " " + MONTHS[b.m] + " " + b.y;
    return text + (spec.partial[i] ? " (incomplete)" : "");
  }

  // Tick positions (bucket indexes: bucket i spans [i, i + 1) on the x scale): bucket
  // boundaries, thinned so labels do not collide. Months thin to quarters, halves or years so the
  // ticks stay on calendar boundaries.
  function ticks(spec, plotWidth) {
    var n = spec.x.length, labelPx = spec.bucket === "month" ? 72 : 52;
    var step = Math.max(1, Math.ceil(n * labelPx / Math.max(plotWidth, 1)));
    if (spec.bucket === "month") {
      var nice = [1, 2, 3, 6, 12, 24, 60];
      step = nice.find(function (k) { return k >= step; }) || step;
      var out = [];
      spec.x.forEach(function (t, i) {
        var p = day(t);
        // The range's first bucket is labelled too (it may start mid-month).
        if (i === 0 || (p.d === 1 && (p.y * 12 + p.m) % step === 0)) out.push(i);
      });
      // Drop a boundary tick crowding the first label (a range starting mid-month).
      if (out.length > 1 && out[1] - out[0] < Math.ceil(step / 2)) out.splice(1, 1);
      return out;
    }
    return spec.x.map(function (_, i) { return i; }).filter(function (i) { return i % step === 0; });
  }

  // A canvas pattern of diagonal white stripes: laid over an incomplete bucket it hatches the
  // bars (and leaves the white background white).
  function hatch(ctx) {
    var c = document.createElement("canvas"), px = Math.round(8 * (window.devicePixelRatio || 1));
    c.width = c.height = px;
    var g = c.getContext("2d");
    g.strokeStyle = "rgba(255,255,255,0.75)";
    g.lineWidth = px / 4;
    g.beginPath();
    g.moveTo(0, px); g.lineTo(px, 0);
    g.moveTo(-px / 2, px / 2); g.lineTo(px / 2, -px / 2);
    g.moveTo(px / 2, px * 1.5); g.lineTo(px * 1.5, px / 2);
    g.stroke();
    return ctx.createPattern(c, "repeat");
  }

  // Grouped bars: bucket i spans [i, i + 1); the n series share 80 % of its width.
  function barPaths(spec, k, n) {
    return function (u, sidx, i0, i1) {
      var path = new Path2D(), ys = u.data[sidx];
      var zero = u.valToPos(0, "y", true);
      for (var i = i0; i <= i1; i++) {
        if (ys[i] === null || ys[i] === undefined) continue;
        var x0 = u.valToPos(i, "x", true), x1 = u.valToPos(i + 1, "x", true);
        var w = x1 - x0, gw = (w * 0.8) / n, bx = x0 + w * 0.1 + k * gw;
        var y = u.valToPos(ys[i], "y", true);
        path.rect(Math.round(bx), Math.min(y, zero), Math.max(Math.round(gw) - 1, 1), Math.max(Math.abs(zero - y), 1));
      }
      return { stroke: path, fill: path };
    };
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
          // Built as text nodes: a series label is a client's metric name, never markup.
          tip.textContent = "";
          var title = document.createElement("b");
          title.textContent = bucketLabel(i, spec);
          tip.appendChild(title);
          spec.series.forEach(function (s) {
            var row = document.createElement("div"), key = document.createElement("i");
            var v = document.createElement("span");
            key.style.background = s.color;
            v.className = "v";
            v.textContent = s.values[i] === null ? "no data" : fmt(s.values[i], s, spec);
            row.appendChild(key);
            row.appendChild(document.createTextNode(s.label));
            row.appendChild(v);
            tip.appendChild(row);
          });
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
    el.setAttribute("data-points", String(spec.x.length));
    if (el.hasAttribute("data-empty") || !spec.x.length) return;
    var money = spec.series.some(function (s) { return s.money; });
    var n = spec.series.length;
    var values = spec.series.map(function (s) {
      return s.values.map(function (v) { return v === null ? null : Number(v); });
    });
    // Buckets are equal slots on the x scale (bucket i spans [i, i + 1), whatever its days: a
    // month is one month wide, as in Databox and Fathom), each drawn at its middle, so its bar
    // or point sits inside its own bucket and under its own label.
    var mids = spec.x.map(function (_, i) { return i + 0.5; });
    var data = [mids], series = [{}];
    spec.series.forEach(function (s, k) {
      if (spec.bars) {
        data.push(values[k]);
        series.push({ label: s.label, stroke: s.color, fill: s.color, width: 1, paths: barPaths(spec, k, n), points: { show: false } });
        return;
      }
      // Lines: whole buckets solid; a segment touching an incomplete bucket dashed, on a second
      // series, with a hollow point.
      var few = spec.x.length < 60;
      data.push(values[k].map(function (v, i) { return spec.partial[i] ? null : v; }));
      series.push({ label: s.label, stroke: s.color, width: 2, points: { show: few, size: 5, fill: s.color } });
      data.push(values[k].map(function (v, i) {
        var near = spec.partial[i] || (i > 0 && spec.partial[i - 1]) || (i + 1 < spec.x.length && spec.partial[i + 1]);
        return near ? v : null;
      }));
      series.push({ label: s.label + " (incomplete)", stroke: s.color, width: 2, dash: [5, 4],
        points: { show: function (u, si, i0, i1) { return true; }, size: 6, fill: "#fff",
          filter: function (u, si) { return u.data[si].map(function (v, i) { return spec.partial[i] && v !== null ? i : null; }).filter(function (i) { return i !== null; }); } } });
    });
    var height = el.classList.contains("small") ? 180 : 280;
    var pattern = null;
    // A bucket without records says so, so an empty slot is not read as zero.
    function paintNoData(u) {
      var ctx = u.ctx, dpr = window.devicePixelRatio || 1;
      var y = spec.bars ? u.valToPos(0, "y", true) : u.bbox.top + u.bbox.height - 2 * dpr;
      ctx.save();
      ctx.strokeStyle = "#9aa3b2";
      ctx.fillStyle = "#7a8494";
      ctx.lineWidth = dpr;
      ctx.setLineDash([2 * dpr, 3 * dpr]);
      ctx.font = Math.round(11 * dpr) + "px system-ui, sans-serif";
      ctx.textAlign = "center";
      spec.x.forEach(function (_, i) {
        if (spec.series.some(function (s) { return s.values[i] !== null; })) return;
        var x0 = u.valToPos(i, "x", true), x1 = u.valToPos(i + 1, "x", true);
        ctx.beginPath();
        ctx.moveTo(x0 + 2 * dpr, y);
        ctx.lineTo(x1 - 2 * dpr, y);
        ctx.stroke();
        if (x1 - x0 >= 48 * dpr) ctx.fillText("no data", (x0 + x1) / 2, y - 6 * dpr);
      });
      ctx.restore();
    }
    function paintPartial(u, style) {
      var ctx = u.ctx;
      ctx.save();
      ctx.fillStyle = style;
      spec.partial.forEach(function (p, i) {
        if (!p) return;
        var x0 = u.valToPos(i, "x", true), x1 = u.valToPos(i + 1, "x", true);
        ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
      });
      ctx.restore();
    }
    var opts = {
      width: Math.max(el.clientWidth, 200), height: height,
      series: series, legend: { show: false },
      cursor: { points: { size: 8 }, drag: { x: false, y: false } },
      scales: {
        // Exactly the buckets of the selected range, whatever the data: no auto-range around
        // a single point (which drew "This month" from Dec 2026 to Aug 2029).
        x: { time: false, range: function () { return [0, spec.x.length]; } },
        y: { range: function (u, min, max) {
          if (min === null || max === null) return [0, 1];
          if (spec.bars) { min = Math.min(0, min); max = Math.max(0, max); }
          return uPlot.rangeNum(min, max === min ? min + 1 : max, 0.1, true);
        } }
      },
      axes: [
        { stroke: "#545f70", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#dde1e7" }, align: 1,
          splits: function (u) { return ticks(spec, u.bbox.width / (window.devicePixelRatio || 1)); },
          values: function (u, vals) { return vals.map(function (i) { return tickLabel(spec.x[i], spec); }); } },
        { stroke: "#545f70", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#dde1e7" }, size: 64,
          values: function (u, vals) { return vals.map(function (v) { return axisFmt(v, spec, money); }); } }
      ],
      hooks: {
        // An incomplete bucket gets a grey band behind the series (visible even before it has
        // records) and, for bars, white stripes over them: hatched bars.
        drawAxes: [function (u) { paintPartial(u, "rgba(84,95,112,0.07)"); }],
        draw: [function (u) {
          paintNoData(u);
          if (!spec.bars) return;
          pattern = pattern || hatch(u.ctx);
          paintPartial(u, pattern);
        }]
      },
      plugins: [tooltipPlugin(spec)]
    };
    var u = new uPlot(opts, data, el);
    el._uplot = u;
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
    // The phone menu: the button exists without script but stays hidden; with script the
    // navigation folds behind it on narrow screens (CSS keys on html.js).
    document.documentElement.classList.add("js");
    var toggle = document.querySelector(".menu-toggle"), nav = document.getElementById("main-nav");
    if (toggle && nav) {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        var open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
        nav.classList.toggle("open", open);
      });
    }
    // Forms whose fields depend on a kind (the alert rule form): show only what the chosen
    // kind reads. Without script every field shows and the server ignores the others.
    document.querySelectorAll("form[data-kind-form]").forEach(function (f) {
      var kind = f.querySelector("[data-kind-select]");
      if (!kind) return;
      function apply() {
        f.querySelectorAll("[data-kinds]").forEach(function (el) {
          el.hidden = el.getAttribute("data-kinds").split(" ").indexOf(kind.value) < 0;
        });
      }
      kind.addEventListener("change", apply);
      apply();
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
