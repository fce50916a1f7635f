// QualityWatch wall: tiles from server-sent events (wall/events), a control chart on click.
// Plain JavaScript, no library and no network beyond this service: it works offline.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const state = { tiles: new Map(), order: [], open: null, pages: [], page: 0 };

// The view. ?density=auto (default) shows full tiles while they fit the screen, else compact
// tiles (name, band in words, 24 h accuracy; the rest on click) sized to fit every queue;
// when even compact tiles at their smallest do not fit, the wall pages through the queues,
// worst first, flipping every ?page_seconds (default 15). ?density=compact|full pins a view
// (a full view that does not fit pages too). Paging is local: no request per flip.
const params = new URLSearchParams(location.search);
const DENSITY = ["auto", "compact", "full"].includes(params.get("density"))
  ? params.get("density") : "auto";
const PAGE_S = Math.max(1, Number(params.get("page_seconds")) || 15);
const COMPACT = { minW: 96, minH: 30, idealW: 240, idealH: 80, gap: 3 };
const EWMA_COLOUR = "#80deea";
const ALERT_LINES = 2; // a full tile's alert boxes; the others in one "+N more" line

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
const pct = (x, d = 1) => (x === null || x === undefined ? "–" : (100 * x).toFixed(d) + "%");
const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "–");
// a scorer's message ends ". Cause: <its cause>" when it has one: say the cause once, apart
const said = (message, cause) => {
  const tail = `. Cause: ${cause}`;
  return cause && message.endsWith(tail) ? message.slice(0, -tail.length) : message;
};
const STATUS = { firing: "open", acknowledged: "acknowledged", resolved: "resolved" };

function sparkline(tile) {
  const w = 300, h = 46, pad = 3;
  const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "spark", role: "img",
    preserveAspectRatio: "none",
    "aria-label": `error rate of the last ${tile.trend.length} subgroups` });
  const vals = tile.trend.concat(tile.trend_ucl).filter((v) => v !== null);
  if (!vals.length) return s;
  const top = Math.max(...vals, 0.01) * 1.1;
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, tile.trend.length - 1);
  const y = (v) => h - pad - (v / top) * (h - 2 * pad);
  const line = (vs, attrs) => {
    const pts = vs.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`))
      .filter((p) => p !== null);
    if (pts.length > 1) s.append(svg("polyline", { points: pts.join(" "), fill: "none",
      "vector-effect": "non-scaling-stroke", ...attrs }));
  };
  line(tile.trend_ucl, { stroke: "#ffb74d", "stroke-width": 1.5, "stroke-dasharray": "4 3" });
  line(tile.trend, { stroke: "#e3f2fd", "stroke-width": 2 });
  const last = tile.trend.length - 1;
  if (last >= 0 && tile.trend[last] !== null) {
    const over = tile.trend_ucl[last] !== null && tile.trend[last] > tile.trend_ucl[last];
    s.append(svg("circle", { cx: x(last), cy: y(tile.trend[last]), r: over ? 5 : 3,
      fill: over ? "#ff5252" : "#e3f2fd" }));
  }
  return s;
}

// the compact tile: the queue, its band in one word (colour is never the only signal) and its
// 24 h accuracy; its title says the open alerts, the click opens the rest
// and, for any band but green, why in words (one line, cut with …; the whole in the title)
function compactView(tile) {
  const why = tile.band !== "green" && tile.band_reason
    ? el("span", { class: "reason", title: tile.band_reason }, tile.band_reason) : null;
  return el("span", { class: "compact-view" },
    el("span", { class: "name" }, tile.queue_id),
    el("span", { class: "line" },
      el("span", { class: `tag band-${tile.band}` }, tile.band_label || tile.band_text.split(":")[0]),
      el("span", { class: "acc-short" }, pct(tile.accuracy_24h)), why));
}

// the open incident in words: "incident #12 acknowledged by key 3 (lead) 10:05 UTC", said once
function incidentWords(i) {
  if (i.status === "acknowledged" && i.acknowledged_by)
    return `incident #${i.id} acknowledged by ${i.acknowledged_by} ${when(i.acknowledged_at)}`;
  return `incident #${i.id} ${STATUS[i.status] || i.status}`;
}

function renderTile(tile) {
  const inc = tile.incident || null;
  const node = el("button", { type: "button", class: `tile band-${tile.band}`,
    "data-queue": tile.queue_id, "data-band": tile.band,
    "data-incident": inc ? inc.status : "none",
    title: `${tile.queue_id}: ${tile.band_text}` +
      (tile.band_reason ? ` (${tile.band_reason})` : "") +
      `, accuracy 24h ${pct(tile.accuracy_24h)}, ${tile.alerts.length} open alert(s)` +
      (inc ? `, ${incidentWords(inc)}` : "") });
  const full = el("span", { class: "full-view" });
  node.append(compactView(tile), full);
  // the score as the health API gives it: capped at the band's top when the band is held
  // down (band_reason), so it never reads 100 beside a red band; the reason is said in text
  // A full tile's height is bounded whatever its content (whether full tiles fit depends on
  // the queues and the screen, not on one incident): the reason at most 2 lines, the
  // incident and the meta 1, at most ALERT_LINES alert boxes then "+N more"; each cut text
  // whole in its title.
  full.append(...[
    el("span", { class: "score", title: tile.band_reason
      ? `health score 0-100 (${tile.band}: ${tile.band_reason})` : "health score 0-100" },
      tile.score === null ? "–" : String(Math.round(tile.score))),
    el("h2", { title: tile.queue_id }, tile.queue_id),
    el("p", { class: `band band-${tile.band}` }, tile.band_text),
    tile.band_reason ? el("p", { class: "why", title: tile.band_reason }, tile.band_reason) : null,
    inc ? el("p", { class: `incident incident-${inc.status}`, title: incidentWords(inc) },
      incidentWords(inc)) : null,
    el("p", { class: "acc" }, `accuracy 24h ${pct(tile.accuracy_24h)} `,
      el("small", {}, `(95% CI ${pct(tile.accuracy_low)}–${pct(tile.accuracy_high)}, ` +
        `n=${tile.n_24h}, target ${pct(tile.target, 0)})`)),
    sparkline(tile),
  ].filter((c) => c !== null)); // (append would write a null as the text "null")
  const meta = [];
  if (tile.baseline_state === "phase1") meta.push(tile.baseline || `learning (${tile.phase1_subgroups})`);
  if (tile.top_error) meta.push(`top error 24h: ${tile.top_error.replaceAll("_", " ")}`);
  if (meta.length) full.append(el("p", { class: "meta", title: meta.join(" · ") }, meta.join(" · ")));
  // open alerts, one line per rule (newest first): the rule, how many, the cause or message
  const byRule = new Map();
  for (const a of [...tile.alerts].reverse()) {
    if (!byRule.has(a.rule)) byRule.set(a.rule, []);
    byRule.get(a.rule).push(a);
  }
  const rules = [...byRule];
  for (const [rule, alerts] of rules.slice(0, ALERT_LINES)) {
    const a = alerts[0];
    // (an acknowledged incident says so above, once: not again on each of its alerts)
    const acked = inc?.status !== "acknowledged" &&
      alerts.every((x) => x.status === "acknowledged") ? ", acknowledged" : "";
    const head = `ALERT ${rule}${alerts.length > 1 ? ` ×${alerts.length}` : ""}`;
    const cause = a.cause ? `cause: ${a.cause}` : a.message;
    full.append(el("p", { class: "alert", title: `${head} (${a.severity}${acked}): ${cause}` },
      el("span", { class: "alert-head" }, el("span", { class: "rule" }, head),
        ` (${a.severity}${acked})`),
      el("span", { class: "cause" }, cause)));
  }
  if (rules.length > ALERT_LINES) {
    const rest = rules.slice(ALERT_LINES).map(([rule, alerts]) => alerts.length > 1
      ? `${rule} ×${alerts.length}` : rule).join(", ");
    full.append(el("p", { class: "more-alerts", title: rest },
      `+${rules.length - ALERT_LINES} more: ${rest}`));
  }
  node.addEventListener("click", () => openDetail(tile.queue_id));
  return node;
}

function render(changed) {
  const main = document.getElementById("tiles");
  const nodes = new Map([...main.querySelectorAll(".tile")].map((n) => [n.dataset.queue, n]));
  const frag = document.createDocumentFragment();
  for (const id of state.order) {
    const tile = state.tiles.get(id);
    if (!tile) continue;
    let node = nodes.get(id);
    if (!node || changed.has(id)) {
      node = renderTile(tile);
      if (changed.has(id) && nodes.has(id)) node.classList.add("changed");
    }
    frag.append(node);
  }
  main.replaceChildren(frag);
  if (!state.order.length) main.append(el("p", { class: "empty" }, "no queue has been scored yet"));
  const count = (b) => state.order.filter((id) => state.tiles.get(id)?.band === b).length;
  document.getElementById("summary").textContent =
    `${state.order.length} queues: ${count("red")} red, ${count("amber")} amber, ` +
    `${count("green")} green, ${count("insufficient_data")} without enough data`;
  layout();
  if (state.open && changed.has(state.open)) openDetail(state.open);
}

// The most columns x rows of compact tiles that hold n tiles in w x h, the tiles as large as
// possible (never under COMPACT.minW x minH); null when n do not fit even at that size.
function fit(n, w, h) {
  let best = null;
  const g = COMPACT.gap;
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    const tw = Math.floor((w - g * (cols + 1)) / cols), th = Math.floor((h - g * (rows + 1)) / rows);
    if (tw < COMPACT.minW) break;
    if (th < COMPACT.minH) continue;
    const scale = Math.min(tw / COMPACT.idealW, th / COMPACT.idealH);
    if (!best || scale > best.scale) best = { cols, rows, tw, th, scale };
  }
  return best;
}

function setView(density) {
  document.body.classList.toggle("density-compact", density === "compact");
  document.body.classList.toggle("density-full", density === "full");
  document.body.dataset.density = density;
}

// Choose the view for the screen as it is, then split the tiles into pages of whole rows.
function layout() {
  const main = document.getElementById("tiles");
  const tiles = [...main.querySelectorAll(".tile")];
  main.classList.remove("paged");
  main.style.removeProperty("height");
  for (const v of ["--cols", "--row-h", "--font"]) main.style.removeProperty(v);
  main.classList.remove("reason-line");
  for (const t of tiles) t.classList.remove("off-page");
  main.scrollTop = 0;
  const room = () => Math.floor(window.innerHeight - main.getBoundingClientRect().top);
  const width = document.documentElement.clientWidth;
  let density = DENSITY === "compact" ? "compact" : "full";
  setView(density);
  if (DENSITY === "auto" && main.scrollHeight > room()) setView((density = "compact"));
  if (density === "compact") {
    const f = fit(tiles.length, width, room());
    const cols = f ? f.cols : Math.max(1, Math.floor((width - COMPACT.gap) / (COMPACT.minW + COMPACT.gap)));
    const th = f ? f.th : COMPACT.minH;
    // as large as the row allows, small enough for the longest name (cut with … beyond 24)
    const longest = Math.min(24, Math.max(8, ...state.order.map((id) => id.length)));
    const byWidth = (width / cols - 12) / (0.62 * longest);
    // a tile that is not green says why on a line of its own when the row holds three lines
    // at a readable size; else after the accuracy on the second line, cut with …
    const why = tiles.some((t) => t.querySelector(".compact-view .reason"));
    const third = why && Math.min(th / 3.9, byWidth) >= 11;
    main.classList.toggle("reason-line", third);
    const font = Math.max(10, Math.min(th / (third ? 3.9 : 2.6), byWidth, 40));
    main.style.setProperty("--cols", String(cols));
    main.style.setProperty("--row-h", `${th}px`);
    main.style.setProperty("--font", `${font.toFixed(1)}px`);
  }
  document.getElementById("view").textContent = `${density} view${DENSITY === "auto" ? " (auto)" : ""}`;
  paginate(main, tiles, room());
}

function paginate(main, tiles, height) {
  const pageEl = document.getElementById("page");
  state.pages = [];
  if (!tiles.length || main.scrollHeight <= height) {
    state.page = 0;
    pageEl.hidden = true;
    document.body.dataset.pages = "1";
    return;
  }
  main.classList.add("paged");
  main.style.height = `${height}px`;
  const pad = parseFloat(getComputedStyle(main).paddingTop) || 0;
  // rows of the grid (tiles sharing a top), then pages of whole rows
  const rows = [];
  for (const [i, t] of tiles.entries()) {
    const top = t.offsetTop, bottom = top + t.offsetHeight;
    const row = rows.length && rows[rows.length - 1].top === top ? rows[rows.length - 1] : null;
    if (row) { row.last = i; row.bottom = Math.max(row.bottom, bottom); }
    else rows.push({ top, bottom, first: i, last: i });
  }
  let page = null;
  for (const r of rows) {
    if (!page || r.bottom - page.top + pad > height) {
      page = { top: r.top, first: r.first, last: r.last };
      state.pages.push(page);
    } else page.last = r.last;
  }
  if (state.page >= state.pages.length) state.page = 0;
  if (document.body.dataset.pages === "1") flipLater(); // paging starts: page 1 a full turn
  document.body.dataset.pages = String(state.pages.length);
  pageEl.hidden = false;
  showPage(main, tiles);
}

function showPage(main, tiles) {
  const p = state.pages[state.page];
  if (!p) return;
  tiles.forEach((t, i) => t.classList.toggle("off-page", i < p.first || i > p.last));
  const pad = parseFloat(getComputedStyle(main).paddingTop) || 0;
  main.scrollTop = p.top - pad;
  document.getElementById("page").textContent = `page ${state.page + 1} of ${state.pages.length}`;
  document.body.dataset.page = String(state.page + 1);
}

// the pages flip on a timer, in the page: the data still comes only by the event stream
let flipping = null;
function flipLater() {
  clearTimeout(flipping);
  flipping = setTimeout(() => {
    if (state.pages.length > 1 && !document.getElementById("detail").open) {
      state.page = (state.page + 1) % state.pages.length;
      const main = document.getElementById("tiles");
      showPage(main, [...main.querySelectorAll(".tile")]);
    }
    flipLater();
  }, PAGE_S * 1000);
}
flipLater();
let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(layout, 150);
});

function onSnapshot(data) {
  state.tiles = new Map(data.tiles.map((t) => [t.queue_id, t]));
  state.order = data.tiles.map((t) => t.queue_id);
  render(new Set(state.order));
}

function onUpdate(data) {
  for (const id of data.removed) state.tiles.delete(id);
  for (const t of data.tiles) state.tiles.set(t.queue_id, t);
  state.order = data.order;
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  render(new Set(data.tiles.map((t) => t.queue_id)));
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("wall/events");
  source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  source.addEventListener("update", (e) => onUpdate(JSON.parse(e.data)));
  source.onopen = () => { live.textContent = "live"; live.className = "live-on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live-off"; };
}

// which chart a signal is of: the p-chart's (the point beyond its limits) or the EWMA's (the
// smoothed rate above its own, much lower, limit: the point itself may sit far under the
// p-chart's)
const isEwma = (sig) => sig.startsWith("ewma");

// the subgroup's alerts on record (the dialog's history: the newest 50), by start
function alertsAt(alerts, start) {
  const t = Date.parse(start);
  return alerts.filter((a) => a.subgroup_start && Date.parse(a.subgroup_start) === t);
}

function chart(points, alerts = []) {
  const w = 1100, h = 360, left = 56, right = 12, top = 14, bottom = 34;
  const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "p-chart" });
  if (!points.length) {
    const t = svg("text", { x: w / 2, y: h / 2, fill: "#aab4bc", "text-anchor": "middle" });
    t.textContent = "no subgroup closed yet";
    s.append(t);
    return s;
  }
  const vals = points.flatMap((p) => [p.p, p.ucl, p.center, p.ewma, p.ewma_ucl,
    p.original_n ? p.original_errors / p.original_n : null]).filter((v) => v !== null && v !== undefined);
  const hasEwma = points.some((p) => p.ewma !== null && p.ewma !== undefined);
  const ymax = Math.max(...vals, 0.01) * 1.1;
  const x = (i) => left + (i + 0.5) * (w - left - right) / points.length;
  const y = (v) => top + (1 - v / ymax) * (h - top - bottom);
  // Phase I: shaded
  points.forEach((p, i) => {
    if (p.status === "phase1" || p.status === "learning_skipped") {
      const step = (w - left - right) / points.length;
      s.append(svg("rect", { x: x(i) - step / 2, y: top, width: step, height: h - top - bottom,
        fill: "#2b3a4a", class: "phase1" }));
    }
  });
  // axes and grid
  for (let k = 0; k <= 4; k++) {
    const v = (ymax * k) / 4;
    s.append(svg("line", { x1: left, x2: w - right, y1: y(v), y2: y(v), stroke: "#27313a" }));
    const t = svg("text", { x: left - 6, y: y(v) + 4, fill: "#aab4bc", "text-anchor": "end",
      "font-size": 12 });
    t.textContent = pct(v, 1);
    s.append(t);
  }
  // baseline changes: a vertical dashed line where the baseline p moves
  points.forEach((p, i) => {
    if (i > 0 && p.baseline_p !== null && points[i - 1].baseline_p !== null &&
        p.baseline_p !== points[i - 1].baseline_p) {
      s.append(svg("line", { x1: x(i) - 2, x2: x(i) - 2, y1: top, y2: h - bottom,
        stroke: "#ce93d8", "stroke-dasharray": "2 4", class: "baseline-change" }));
    }
  });
  // limits (step per subgroup: variable n) and centre line
  const steps = (key, attrs) => {
    let d = "";
    const step = (w - left - right) / points.length;
    points.forEach((p, i) => {
      const v = p[key];
      if (v === null || v === undefined) return;
      d += `M${(x(i) - step / 2).toFixed(1)},${y(v).toFixed(1)}H${(x(i) + step / 2).toFixed(1)}`;
    });
    if (d) s.append(svg("path", { d, fill: "none", ...attrs }));
  };
  steps("ucl", { stroke: "#ffb74d", "stroke-width": 2, "stroke-dasharray": "6 4", class: "ucl" });
  steps("lcl", { stroke: "#ffb74d", "stroke-width": 2, "stroke-dasharray": "6 4", class: "lcl" });
  steps("center", { stroke: "#90caf9", "stroke-width": 1.5, class: "center" });
  // the EWMA (what an EWMA signal is about) and its upper limit, where the scorer sent them
  steps("ewma_ucl", { stroke: EWMA_COLOUR, "stroke-width": 1.5, "stroke-dasharray": "2 3",
    class: "ewma-ucl" });
  const ewmaLine = points.map((p, i) => (p.ewma === null || p.ewma === undefined ? null
    : `${x(i).toFixed(1)},${y(p.ewma).toFixed(1)}`)).filter((v) => v !== null);
  if (ewmaLine.length > 1) s.append(svg("polyline", { points: ewmaLine.join(" "), fill: "none",
    stroke: EWMA_COLOUR, "stroke-width": 1.5, class: "ewma" }));
  // the error rate, then the points
  const line = points.map((p, i) => (p.p === null ? null : `${x(i).toFixed(1)},${y(p.p).toFixed(1)}`))
    .filter((v) => v !== null);
  if (line.length > 1) s.append(svg("polyline", { points: line.join(" "), fill: "none",
    stroke: "#546e7a", "stroke-width": 1.2 }));
  points.forEach((p, i) => {
    if (p.p === null) return;
    const pSignals = p.signals.filter((g) => !isEwma(g));
    const eSignals = p.signals.filter(isEwma);
    const signal = pSignals.length > 0;
    if (p.revision > 0 && p.original_n > 0) {
      const op = p.original_errors / p.original_n;
      const m = svg("text", { x: x(i), y: y(op) + 4, fill: "#aab4bc", "text-anchor": "middle",
        "font-size": 11, class: "original" });
      m.textContent = "×";
      s.append(m);
    }
    const attrs = { class: signal ? "point signal p-signal" : "point",
      fill: p.revision > 0 ? "none" : (signal ? "#ff5252" : "#e3f2fd"),
      stroke: signal ? "#ff5252" : "#e3f2fd", "stroke-width": 1.5 };
    const node = signal
      ? svg("path", { d: `M${x(i)},${y(p.p) - 6}l6,6l-6,6l-6,-6z`, ...attrs })
      : svg("circle", { cx: x(i), cy: y(p.p), r: 3.5, ...attrs });
    const over = p.ucl !== null && p.p > p.ucl;
    const raised = alertsAt(alerts, p.start);
    const words = [`${when(p.start)}: ${p.errors}/${p.n} = ${pct(p.p)}`];
    if (p.ucl !== null) words.push(`p-chart limits ${pct(p.lcl)}–${pct(p.ucl)}`);
    if (pSignals.length) words.push(`p-chart signal: ${pSignals.join(", ")} (the point beyond its limit)`);
    if (eSignals.length) words.push(`EWMA signal: ${eSignals.join(", ")} (the EWMA ` +
      `${p.ewma !== null && p.ewma !== undefined ? pct(p.ewma, 2) : ""} above its limit ` +
      `${p.ewma_ucl !== null && p.ewma_ucl !== undefined ? pct(p.ewma_ucl, 2) : ""}, not this ` +
      "point above the p-chart's)");
    if (p.revision > 0) {
      words.push(`revision ${p.revision}: late verdicts changed it after it closed (first ` +
        `closed ${p.original_errors}/${p.original_n}); a revision raises no alert`);
      if (over || signal) words.push(raised.length
        ? `alert raised when it first closed: ${[...new Set(raised.map((a) => a.rule))].join(", ")}`
        : "no alert was raised for this subgroup");
    } else if (raised.length) {
      words.push(`alert: ${[...new Set(raised.map((a) => a.rule))].join(", ")}`);
    }
    words.push(p.status);
    const title = svg("title", {});
    title.textContent = words.join("; ");
    node.append(title);
    s.append(node);
    if (eSignals.length) {
      // on the EWMA line where it is drawn; else above the point, with its own legend words
      const ey = y(hasEwma && p.ewma !== null && p.ewma !== undefined ? p.ewma : p.p) - 10;
      const mark = svg("path", { d: `M${x(i)},${ey - 5}l5,8h-10z`, class: "signal ewma-signal",
        fill: EWMA_COLOUR, stroke: "#101418", "stroke-width": 1 });
      const t = svg("title", {});
      t.textContent = words.join("; ");
      mark.append(t);
      s.append(mark);
    }
  });
  const first = svg("text", { x: left, y: h - 10, fill: "#aab4bc", "font-size": 12 });
  first.textContent = when(points[0].start);
  const last = svg("text", { x: w - right, y: h - 10, fill: "#aab4bc", "font-size": 12,
    "text-anchor": "end" });
  last.textContent = when(points[points.length - 1].start);
  s.append(first, last);
  return s;
}

// each site against its target: the status in words, never by colour alone
function siteRows(sites) {
  const acc = (w) => (w.n ? `${pct(w.accuracy)} (${pct(w.interval[0])}–${pct(w.interval[1])}, n=${w.n})`
    : "no QA verdicts");
  const chance = (p) => (p === null ? "–" : p > 0.995 ? ">99%" : p < 0.005 ? "<1%" : pct(p, 0));
  const rows = sites.map((s) => {
    const day = s.last_24h;
    const status = day.below_target_with_confidence ? "below target"
      : day.accuracy === null ? "no data" : day.accuracy < s.target ? "under target, not yet with confidence" : "meets target";
    return el("tr", { class: `site-row${day.below_target_with_confidence ? " site-below" : ""}`,
      "data-site": s.site },
      el("td", {}, s.site), el("td", {}, pct(s.target)), el("td", {}, acc(day)),
      el("td", {}, chance(day.prob_at_least_target)), el("td", {}, acc(s.last_7d)),
      el("td", { class: "site-status" }, status));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6" }, "no site data")));
  return rows;
}

// the queue's incidents, newest first: status in words (who acknowledged, who resolved), the
// detectors it groups, its top cause (said once) and its notes
function incidentRows(incidents) {
  const rows = incidents.map((i) => {
    // each fact once: "acknowledged by X <when>" (not "acknowledged, acknowledged by X"),
    // "resolved by Y, acknowledged by X <when>"
    const acked = i.acknowledged_by ? `acknowledged by ${i.acknowledged_by} ${when(i.acknowledged_at)}` : null;
    const status = [];
    if (i.status === "resolved") status.push(i.resolved_by ? `resolved by ${i.resolved_by}` : "resolved");
    else if (!(i.status === "acknowledged" && acked)) status.push(STATUS[i.status] || i.status);
    if (acked) status.push(acked);
    const signals = Object.entries(i.signals_by_rule)
      .map(([rule, n]) => (n > 1 ? `${rule} ×${n}` : rule)).join(", ");
    const notes = i.notes
      ? el("span", {}, `${i.notes} note${i.notes > 1 ? "s" : ""}, last: `,
        el("q", { class: "note" }, i.last_note), ` (${i.last_note_by}, ${when(i.last_note_at)})`)
      : "no note";
    return el("tr", { class: `incident-row status-${i.status}`, "data-incident": String(i.id) },
      el("td", {}, `#${i.id}`, el("small", { class: "muted" }, ` ${i.severity}`)),
      el("td", { class: "incident-status" }, status.join(", ")),
      el("td", {}, when(i.opened_at)), el("td", {}, when(i.resolved_at)),
      el("td", { class: "incident-signals" }, signals),
      el("td", {}, i.top_cause ? el("span", { class: "cause" }, i.top_cause)
        : said(i.summary, i.top_cause)),
      el("td", { class: "incident-notes" }, notes));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7" }, "no incident for this queue")));
  return rows;
}

async function openDetail(queueId) {
  const dialog = document.getElementById("detail");
  state.open = queueId;
  const r = await fetch(`wall/queues/${encodeURIComponent(queueId)}`);
  if (!r.ok) return;
  const d = await r.json();
  if (state.open !== queueId) return;
  document.getElementById("detail-title").textContent = queueId;
  const band = document.getElementById("detail-band");
  band.textContent = d.tile.band_text;
  band.className = `band band-${d.tile.band}`;
  document.getElementById("detail-explanation").textContent = d.tile.explanation;
  document.getElementById("detail-accuracy").textContent =
    `accuracy 24h ${pct(d.tile.accuracy_24h)} (95% CI ${pct(d.tile.accuracy_low)}–` +
    `${pct(d.tile.accuracy_high)}, n=${d.tile.n_24h}, target ${pct(d.tile.target, 0)})` +
    (d.tile.top_error ? ` · top error 24h: ${d.tile.top_error.replaceAll("_", " ")}` : "");
  document.getElementById("chart").replaceChildren(chart(d.points, d.alerts));
  // the legend says what this chart draws: the EWMA and its limit, or only its signals
  const drawn = d.points.some((p) => p.ewma !== null && p.ewma !== undefined);
  document.querySelector("#chart-legend .lg-ewma").hidden = !drawn;
  document.querySelector("#chart-legend .lg-ewma-signal").textContent = drawn
    ? "▲ EWMA signal (the EWMA above its limit)" : "▲ EWMA signal (its line is not drawn)";
  document.querySelector("#incidents tbody").replaceChildren(...incidentRows(d.incidents || []));
  const rows = d.alerts.map((a) => el("tr", { class: `alert-row status-${a.status}` },
    el("td", {}, a.status), el("td", {}, a.rule), el("td", {}, a.severity),
    el("td", {}, when(a.first_seen_at)), el("td", {}, when(a.resolved_at)),
    el("td", {}, said(a.message, a.cause),
      a.cause ? el("span", { class: "cause" }, `cause: ${a.cause}`) : null)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6" }, "no alert for this queue")));
  document.querySelector("#history tbody").replaceChildren(...rows);
  document.querySelector("#sites tbody").replaceChildren(...siteRows(d.sites || []));
  if (!dialog.open) dialog.showModal();
}

document.getElementById("detail-close").addEventListener("click", () => {
  state.open = null;
  document.getElementById("detail").close();
});
document.getElementById("detail").addEventListener("close", () => { state.open = null; });
connect();
