// Overview page: draws the progress chart with uPlot and keeps the page current from the lab's event stream.
(function () {
  "use strict";
  const chartEl = document.getElementById("chart");
  if (!chartEl) return;
  const css = getComputedStyle(document.documentElement);
  const colour = (v) => (css.getPropertyValue("--" + v).trim() || "#868e96");
  // Draw order: failures first, so improved points end up on top where they overlap. `kept` is provisional: its
  // line builds on it, but it is not a claim until a verification on fresh seeds confirms it.
  const ORDER = ["crashed", "timed_out", "no_metric", "bad_metric", "rejected", "no_change", "pending",
    "not_improved", "inconclusive", "kept", "flagged", "improved"];
  // The band's label, as the report's plot writes it: what the ± is (2 sd) and the runs behind the sd.
  const bandLabel = (b) => "baseline ± 2 sd (n=" + b.n_runs + ")";
  let plot = null;
  let last = null;

  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);
  // Knobs ideas are all "set NAME=value, …": the settings are what tells them apart.
  const labelText = (s) => clip(s.replace(/^set /, ""), 44);
  // A log-scaled y axis (for metrics whose outliers squash the rest), offered when every value is positive.
  let logY = false;
  function logToggle(data) {
    const positive = data.points.length > 0 && data.points.every((p) => p[1] > 0) &&
      (!data.baseline || data.baseline.metric - 2 * data.baseline.sd > 0);
    let box = document.getElementById("chart-log");
    if (!positive) { if (box) box.parentElement.remove(); logY = false; return; }
    if (box) return;
    const label = document.createElement("label");
    label.className = "chart-option";
    box = document.createElement("input");
    box.type = "checkbox";
    box.id = "chart-log";
    box.addEventListener("change", () => { logY = box.checked; if (last) build(last); });
    label.append(box, " log scale");
    const note = document.getElementById("chart-note");
    note.parentElement.insertBefore(label, note);
  }

  function build(data) {
    last = data;
    logToggle(data);
    const verdicts = ORDER.filter((v) => data.points.some((p) => p[2] === v));
    for (const p of data.points) if (!verdicts.includes(p[2])) verdicts.push(p[2]);
    const xsSet = new Set(data.points.map((p) => p[0]));
    for (const s of data.best) xsSet.add(s[0]);
    const xs = Array.from(xsSet).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const series = verdicts.map(() => new Array(xs.length).fill(null));
    for (const [x, y, v] of data.points) series[verdicts.indexOf(v)][index.get(x)] = y;
    // The running best is a step function that only changes at steps; fill it forward over every x.
    const best = new Array(xs.length).fill(null);
    let si = 0, cur = null;
    xs.forEach((x, i) => {
      while (si < data.best.length && data.best[si][0] <= x) cur = data.best[si++][1];
      best[i] = cur;
    });
    const minimize = data.goal === "minimize";
    const opts = {
      width: Math.max(320, chartEl.clientWidth),
      height: 380,
      scales: {
        x: { time: false },
        // Room for the band and, on the good side, for the improvement labels.
        y: logY ? { distr: 3 } : { range: (u, lo, hi) => {
          if (data.baseline) {
            lo = Math.min(lo, data.baseline.metric - 2 * data.baseline.sd);
            hi = Math.max(hi, data.baseline.metric + 2 * data.baseline.sd);
          }
          const pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.05 || 0.1;
          return minimize ? [lo - 3 * pad, hi + pad] : [lo - pad, hi + 3 * pad];
        } },
      },
      // Drag a box to zoom into it (x, y or both); a double click shows everything again.
      cursor: { points: { size: 9 }, drag: { x: true, y: true, uni: 30 } },
      legend: { live: false },
      axes: [
        { label: "experiment", stroke: "#6b7280", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000], grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e4e7eb" } },
        { label: data.metric + (minimize ? " (lower is better)" : " (higher is better)"), stroke: "#6b7280",
          grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e4e7eb" }, size: 70 },
      ],
      series: [
        { label: "exp" },
        ...verdicts.map((v) => ({
          label: v.replace("_", " "), stroke: colour(v), fill: colour(v), paths: () => null,
          points: { show: true, size: 9, width: 1, stroke: "#ffffff", fill: colour(v) },
        })),
        { label: "running best", stroke: "#111827", width: 2, spanGaps: true,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      ],
      // The band and the labels go under the points and the running best, so a label never hides them.
      hooks: { drawClear: [drawBand, drawLabels] },
    };
    if (plot) plot.destroy();
    chartEl.innerHTML = "";
    plot = new uPlot(opts, [xs, ...series, best], chartEl);
    chartEl.dataset.points = String(data.points.length);
    chartEl.dataset.total = String(data.total);
    window.labmindChart = { points: data.points.length, total: data.total, sampled: data.sampled, logY: logY };
    const note = document.getElementById("chart-note");
    note.textContent = data.total === 0 ? "No measured experiments yet." :
      (data.sampled ? `${data.points.length} of ${data.total} points shown (min/max per bucket; every improved and flagged one kept)`
        : `${data.total} measured experiment${data.total === 1 ? "" : "s"}`) +
      (data.baseline ? " · band: " + bandLabel(data.baseline) : "");
  }

  // The baseline's noise band (mean ± 2 sd), drawn under everything else.
  function drawBand(u) {
    if (!last || !last.baseline) return;
    const { metric, sd } = last.baseline;
    const top = u.valToPos(metric + 2 * sd, "y", true), bot = u.valToPos(metric - 2 * sd, "y", true);
    const mid = u.valToPos(metric, "y", true);
    const { left, width } = u.bbox;
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(59, 91, 219, 0.08)";
    ctx.fillRect(left, Math.min(top, bot), width, Math.abs(bot - top));
    ctx.strokeStyle = "rgba(59, 91, 219, 0.55)";
    ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(left, mid); ctx.lineTo(left + width, mid); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "rgba(59, 91, 219, 0.9)";
    ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
    // Label the band on its left edge, above it (or below when the band touches the plot's top).
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
    const label = bandLabel(last.baseline);
    const above = Math.min(top, bot) - 5 * devicePixelRatio;
    const y = above > u.bbox.top + 14 * devicePixelRatio ? above : Math.max(top, bot) + 14 * devicePixelRatio;
    ctx.fillText(label, left + 6 * devicePixelRatio, y);
    ctx.restore();
  }

  // Label improved experiments with their id and idea; only the newest ones when there are many.
  function drawLabels(u) {
    if (!last) return;
    const ids = Object.keys(last.labels).map(Number).sort((a, b) => a - b).slice(-12);
    const byId = new Map(last.points.map((p) => [p[0], p[1]]));
    const ctx = u.ctx, dpr = devicePixelRatio;
    ctx.save();
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.textAlign = "left";  // uPlot leaves the context right-aligned after drawing its axes
    ctx.textBaseline = "bottom";
    // Improvements sit on the good side of the cloud, so labels go further that way (below when
    // minimising), staggered over three rows, with a leader line back to their point.
    const dir = last.goal === "minimize" ? 1 : -1;
    ids.forEach((id, k) => {
      const y = byId.get(id);
      if (y == null) return;
      const px = u.valToPos(id, "x", true), py = u.valToPos(y, "y", true);
      const text = `#${id} ${labelText(last.labels[String(id)] || "")}`;
      const w = ctx.measureText(text).width;
      const x0 = Math.max(u.bbox.left + 4 * dpr, Math.min(px + 10 * dpr, u.bbox.left + u.bbox.width - w - 4 * dpr));
      let y0 = py + dir * (18 + (k % 3) * 15) * dpr;
      y0 = Math.min(Math.max(y0, u.bbox.top + 14 * dpr), u.bbox.top + u.bbox.height - 4 * dpr);
      ctx.strokeStyle = "rgba(18, 161, 80, 0.5)";
      ctx.lineWidth = dpr;
      ctx.beginPath(); ctx.moveTo(px, py); ctx.lineTo(x0 - 2 * dpr, y0 - 6 * dpr); ctx.stroke();
      ctx.fillStyle = "rgba(255,255,255,0.75)";
      ctx.fillRect(x0 - 2 * dpr, y0 - 13 * dpr, w + 4 * dpr, 15 * dpr);
      ctx.fillStyle = colour("improved");
      ctx.fillText(text, x0, y0);
    });
    ctx.restore();
  }

  async function loadChart() {
    const r = await fetch("/api/chart", { credentials: "same-origin" });
    if (r.ok) build(await r.json());
  }

  // The headline, verdicts, running runs and lines come back as one server-rendered snapshot that htmx
  // swaps in out-of-band, so the page never mixes numbers from two moments.
  function refreshPanels() {
    if (!window.htmx) return Promise.resolve();
    return htmx.ajax("GET", "/partials/live", { target: "#headline", swap: "none" });
  }

  // Coalesce bursts of events (a lab emits several per experiment) into one refresh at most every 1.5 s.
  let pending = null;
  function scheduleRefresh() {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      await Promise.all([refreshPanels(), loadChart()]);
    }, 1500);
  }

  function addEvent(ev) {
    const list = document.getElementById("events");
    const li = document.createElement("li");
    li.className = "new";
    const t = document.createElement("time");
    t.textContent = new Date(ev.at * 1000).toLocaleString("sv-SE");
    const k = document.createElement("span");
    k.className = "ek ek-" + ev.kind;
    k.textContent = ev.kind;
    li.append(t, k);
    let msg;
    if (ev.experiment_id) { msg = document.createElement("a"); msg.href = "/experiments/" + ev.experiment_id; }
    else msg = document.createElement("span");
    msg.textContent = ev.message;
    li.append(msg);
    list.prepend(li);
    while (list.children.length > 200) list.lastElementChild.remove();
    list.dataset.last = String(ev.id);
    const count = document.getElementById("live-count");
    const n = Number(count.dataset.count) + 1;
    count.dataset.count = String(n);
    count.textContent = String(n);
    const dot = document.getElementById("live-dot");
    dot.classList.remove("flash"); void dot.offsetWidth; dot.classList.add("flash");
  }

  function connect() {
    const after = document.getElementById("events").dataset.last || "0";
    const es = new EventSource("/api/stream?after_id=" + encodeURIComponent(after));
    const dot = document.getElementById("live-dot");
    es.onopen = () => dot.classList.add("live");
    es.onerror = () => dot.classList.remove("live");
    es.addEventListener("lab", (m) => { addEvent(JSON.parse(m.data)); scheduleRefresh(); });
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (plot) plot.setSize({ width: chartEl.clientWidth, height: 380 }); }, 150);
  });

  loadChart();
  connect();
})();
