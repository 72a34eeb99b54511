// twisted_lab console: one page, plain JS, no build step, no network but the lab's own.
// It uses only the HTTP API (/api/...) and the WebSocket (/ws).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { session: null, device: null, desc: null, ws: null, tokenRequired: false,
                  trend: [], frames: [], plotFrames: [], pollTimer: null, logAfter: 0 };
  window.labConsole = state;

  // ---- HTTP API ----------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = $("token").value || localStorage.getItem("labToken") || "";
    if (token) headers["Authorization"] = "Bearer " + token;
    const r = await fetch("/api/" + path, { method, headers, credentials: "same-origin",
                                            body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = { error: "BadReply", message: "status " + r.status }; }
    if (!r.ok) { const err = new Error(data.message || ("HTTP " + r.status)); err.status = r.status; err.data = data; throw err; }
    return data;
  }
  function showError(e) {
    const box = $("error");
    if (!e) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    const holder = e.data && e.data.holder && !e.message.includes(e.data.holder) ? " (held by " + e.data.holder + ")" : "";
    box.textContent = (e.data && e.data.error ? e.data.error + ": " : "") + e.message + holder;
  }
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const fmt = (v) => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(6)) :
                     (v === null || v === undefined ? "–" : (typeof v === "object" ? JSON.stringify(v) : String(v)));

  // ---- WebSocket ---------------------------------------------------------------
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.binaryType = "arraybuffer";
    state.ws = ws;
    ws.onopen = () => { $("status").textContent = "live"; $("status").className = "status on";
                        if (state.device) send({ op: "watch", device: state.device }); };
    ws.onclose = () => { $("status").textContent = "disconnected"; $("status").className = "status off";
                         setTimeout(connect, 1000); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") onJson(JSON.parse(ev.data));
      else onBinary(ev.data);
    };
  }
  function send(msg) { if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(msg)); }

  function onJson(m) {
    if (m.type === "lab") { if (route().view === "lab") loadLab(); return; }
    if (m.device !== state.device) return;
    if (m.type === "value") setValue(m.parameter, m.error ? m.error : m.value);
    else if (m.type === "position") { $("position").textContent = fmt(m.value); setValue("position", m.value); }
    else if (m.type === "data0d") { drawTrend(m); send({ op: "ack", device: m.device }); }
    else if (m.type === "error") showError({ message: m.message, data: m });
  }
  function onBinary(buf) {
    const dv = new DataView(buf);
    const n = dv.getUint32(0, true);
    const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    const off = 4 + n, count = head.shape.reduce((a, b) => a * b, 1);
    const T = { float32: Float32Array, uint16: Uint16Array, uint8: Uint8Array }[head.dtype] || Float32Array;
    const data = new T(buf, off, count);
    if (head.device === state.device) {
      if (head.dim === "Data2D") drawImage(head, data); else drawPlot(head, data);
    }
    send({ op: "ack", device: head.device });
  }

  // ---- pictures ----------------------------------------------------------------
  const CMAPS = {
    viridis: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
    inferno: [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
    gray: [[0, 0, 0], [255, 255, 255]],
  };
  const luts = {};
  function lut(name) {
    if (luts[name]) return luts[name];
    const stops = CMAPS[name] || CMAPS.viridis, out = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const x = i / 255 * (stops.length - 1), k = Math.min(Math.floor(x), stops.length - 2), f = x - k;
      for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
    }
    return (luts[name] = out);
  }
  function rate(list) {
    const now = performance.now(); list.push(now);
    while (list.length && now - list[0] > 2000) list.shift();
    return list.length > 1 ? (list.length - 1) * 1000 / (now - list[0]) : 0;
  }
  function drawImage(head, data) {
    const [h, w] = head.shape, canvas = $("frame-canvas");
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    let lo = Infinity, hi = -Infinity;
    if ($("autocontrast").checked) {
      const step = Math.max(1, Math.floor(data.length / 8192)), sample = [];
      for (let i = 0; i < data.length; i += step) sample.push(data[i]);
      sample.sort((a, b) => a - b);
      lo = sample[Math.floor(sample.length * 0.01)]; hi = sample[Math.min(sample.length - 1, Math.floor(sample.length * 0.999))];
    } else { for (let i = 0; i < data.length; i++) { if (data[i] < lo) lo = data[i]; if (data[i] > hi) hi = data[i]; } }
    if (!(hi > lo)) hi = lo + 1;
    const ctx = canvas.getContext("2d", { willReadFrequently: true }), img = ctx.createImageData(w, h), px = img.data, map = lut($("cmap").value);
    const scale = 255 / (hi - lo);
    for (let i = 0, j = 0; i < data.length; i++, j += 4) {
      let v = (data[i] - lo) * scale; v = v < 0 ? 0 : v > 255 ? 255 : v | 0;
      px[j] = map[v * 3]; px[j + 1] = map[v * 3 + 1]; px[j + 2] = map[v * 3 + 2]; px[j + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    state.frameCount = (state.frameCount || 0) + 1;
    $("fps").textContent = rate(state.frames).toFixed(1) + " fps";
    $("frame-info").textContent = head.full_shape.join("×") + " " + (head.units || "") + (head.full_shape[0] !== h ? " (shown " + h + "×" + w + ")" : "");
    $("range").textContent = "range " + fmt(lo) + " … " + fmt(hi);
  }
  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1, step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || step0;
    const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const out = [];
    for (let k = Math.ceil(lo / step); k * step <= hi + 1e-9 * span; k++) {
      const t = k * step;
      out.push({ at: t, label: Math.abs(t) >= 1e6 || (t !== 0 && Math.abs(t) < 1e-4) ? t.toExponential(1) : t.toFixed(digits) });
    }
    return out;
  }
  function linePlot(svg, xs, ys, xLabel, yLabel, W, H) {
    const L = 76, R = 12, T = 10, B = 40;
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (let i = 0; i < ys.length; i++) { const x = xs[i], y = ys[i];
      if (x < xmin) xmin = x; if (x > xmax) xmax = x; if (y < ymin) ymin = y; if (y > ymax) ymax = y; }
    if (!(xmax > xmin)) xmax = xmin + 1; if (!(ymax > ymin)) { ymax = ymin + 1; }
    const pad = (ymax - ymin) * 0.05; ymin -= pad; ymax += pad;
    const sx = (x) => L + (x - xmin) / (xmax - xmin) * (W - L - R), sy = (y) => H - B - (y - ymin) / (ymax - ymin) * (H - T - B);
    let pts = "";
    const stride = Math.max(1, Math.floor(ys.length / 1500));
    for (let i = 0; i < ys.length; i += stride) pts += sx(xs[i]).toFixed(1) + "," + sy(ys[i]).toFixed(1) + " ";
    let s = "";
    for (const t of niceTicks(xmin, xmax, 8)) s += `<line class="grid" x1="${sx(t.at)}" x2="${sx(t.at)}" y1="${T}" y2="${H - B}"/><text class="xtick" x="${sx(t.at)}" y="${H - B + 14}" text-anchor="middle">${t.label}</text>`;
    for (const t of niceTicks(ymin, ymax, 5)) s += `<line class="grid" x1="${L}" x2="${W - R}" y1="${sy(t.at)}" y2="${sy(t.at)}"/><text class="ytick" x="${L - 4}" y="${sy(t.at) + 4}" text-anchor="end">${t.label}</text>`;
    s += `<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/><line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>`;
    s += `<polyline class="line" points="${pts}"/>`;
    s += `<text class="xlabel" x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>`;
    s += `<text class="ylabel" transform="translate(14,${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`;
    svg.innerHTML = s;
  }
  function drawPlot(head, data) {
    const xs = head.x || Array.from(data, (_, i) => i);
    const xl = (head.x_label || "x") + (head.x_units ? " (" + head.x_units + ")" : "");
    const yl = (head.label || "signal") + (head.units ? " (" + head.units + ")" : "");
    linePlot($("plot"), xs, data, xl, yl, 720, 320);
    state.plotCount = (state.plotCount || 0) + 1;
    $("plot-fps").textContent = rate(state.plotFrames).toFixed(1) + " fps";
  }
  function drawTrend(m) {
    const v = m.values[0]; if (!v || typeof v.value !== "number") return;
    state.trend.push([m.t, v.value]); if (state.trend.length > 600) state.trend.shift();
    const t0 = state.trend[state.trend.length - 1][0];
    linePlot($("trend"), state.trend.map((p) => p[0] - t0), state.trend.map((p) => p[1]),
             "time (s)", v.label + (v.units ? " (" + v.units + ")" : ""), 720, 240);
    $("trend-value").textContent = fmt(v.value) + " " + (v.units || "");
  }

  // ---- views -------------------------------------------------------------------
  function route() {
    const parts = (location.hash || "#/lab").slice(2).split("/");
    return { view: parts[0] || "lab", arg: decodeURIComponent(parts[1] || "") };
  }
  function show(view) {
    for (const v of ["lab", "device", "wires", "log"]) $("view-" + v).hidden = v !== view;
    for (const v of ["lab", "wires", "log"]) $("nav-" + v).className = v === view || (view === "device" && v === "lab") ? "active" : "";
  }
  function origin(o) { return o.local ? "local" : (o.protocol + (o.peer ? " · " + o.peer : "")); }
  async function loadLab() {
    const data = await api("GET", "devices");
    $("devices").tBodies[0].innerHTML = data.devices.map((d) =>
      `<tr data-device="${esc(d.name)}"><td><a href="#/device/${encodeURIComponent(d.name)}">${esc(d.name)}</a></td>` +
      `<td>${esc(d.kind)}${d.dims.length ? " <small>" + esc(d.dims.join(", ")) + "</small>" : ""}</td><td>${esc(origin(d.origin))}</td>` +
      `<td class="${d.online ? "online" : "offline"}">${d.online ? "online" : "offline"}${d.busy ? " · busy" : ""}</td>` +
      `<td>${esc(d.leased_by.join(", ") || "–")}</td></tr>`).join("");
  }
  function setValue(name, value) {
    const cell = document.querySelector(`#params td[data-value="${CSS.escape(name)}"]`);
    if (cell) cell.textContent = fmt(value);
  }
  async function loadDevice(name) {
    if (state.device && state.device !== name) send({ op: "unwatch", device: state.device });
    state.device = name; state.trend = [];
    const d = await api("GET", "devices/" + encodeURIComponent(name));
    state.desc = d;
    $("dev-name").textContent = d.name; $("dev-kind").textContent = d.kind + " · " + origin(d.origin);
    $("dev-state").textContent = (d.online ? "online" : "offline") + (d.leased_by.length ? " · leased by " + d.leased_by.join(", ") : "");
    $("dev-doc").textContent = d.doc || "";
    $("actuator").hidden = d.kind !== "actuator"; $("position-units").textContent = d.units || "";
    $("image-panel").hidden = !d.dims.includes("Data2D");
    $("plot-panel").hidden = !d.dims.includes("Data1D");
    $("trend-panel").hidden = !d.dims.includes("Data0D");
    $("params").tBodies[0].innerHTML = d.parameters.map((p) => {
      const lim = [p.minimum, p.maximum].some((x) => x !== undefined) ? fmt(p.minimum ?? "") + " … " + fmt(p.maximum ?? "") :
                  (p.choices ? p.choices.map(fmt).join(" | ") : "");
      const edit = p.readonly ? "<small>read-only</small>" :
        `<input id="param-input-${esc(p.name)}" data-param="${esc(p.name)}" size="10"> <button data-set="${esc(p.name)}" id="param-set-${esc(p.name)}">Set</button>`;
      return `<tr><td>${esc(p.name)}</td><td class="num" data-value="${esc(p.name)}">–</td><td>${esc(p.type)}</td><td>${esc(p.units)}</td>` +
             `<td>${esc(lim)}</td><td>${edit}</td><td><small>${esc(p.doc)}</small></td></tr>`;
    }).join("");
    $("actions").tBodies[0].innerHTML = d.actions.map((a) =>
      `<tr><td>${esc(a.name)}${a.mutating ? "" : " <small>(read)</small>"}</td><td>` +
      a.arguments.map((g) => `<label>${esc(g.name)}${g.units ? " (" + esc(g.units) + ")" : ""} <input data-action="${esc(a.name)}" data-arg="${esc(g.name)}" data-type="${esc(g.type)}" size="8" placeholder="${g.required ? "" : esc(fmt(g.default))}"></label> `).join("") +
      `</td><td><button data-call="${esc(a.name)}">Call</button></td><td class="num" data-result="${esc(a.name)}"></td><td><small>${esc(a.doc)}</small></td></tr>`).join("");
    send({ op: "watch", device: name });
  }
  function parseValue(text, type) {
    if (type === "float" || type === "int") { const v = Number(text); return text.trim() === "" || isNaN(v) ? text : v; }
    if (type === "bool") return text === "true" || text === "1" || text === "on";
    if (type === "list" || type === "dict" || type === "any") { try { return JSON.parse(text); } catch (e) { return text; } }
    return text;
  }
  async function act(fn) { showError(null); try { return await fn(); } catch (e) { showError(e); return undefined; } }
  async function callAction(action, args) {
    const name = state.device;
    return act(() => api("POST", `devices/${encodeURIComponent(name)}/actions/${encodeURIComponent(action)}`, { args }));
  }
  document.addEventListener("click", async (ev) => {
    const t = ev.target;
    if (t.dataset.set) {
      const p = state.desc.parameters.find((x) => x.name === t.dataset.set);
      const text = $("param-input-" + p.name).value;
      const r = await act(() => api("PUT", `devices/${encodeURIComponent(state.device)}/parameters/${encodeURIComponent(p.name)}`,
                                     { value: parseValue(text, p.type) }));
      if (r) setValue(p.name, r.value);
    } else if (t.dataset.call) {
      const inputs = document.querySelectorAll(`#actions input[data-action="${CSS.escape(t.dataset.call)}"]`);
      const kwargs = {}; inputs.forEach((i) => { if (i.value !== "") kwargs[i.dataset.arg] = parseValue(i.value, i.dataset.type); });
      const r = await act(() => api("POST", `devices/${encodeURIComponent(state.device)}/actions/${encodeURIComponent(t.dataset.call)}`, { kwargs }));
      const cell = document.querySelector(`#actions td[data-result="${CSS.escape(t.dataset.call)}"]`);
      if (r && cell) cell.textContent = typeof r.result === "object" && r.result && r.result.signals ? "data (" + r.result.signals.length + " signals)" : fmt(r.result);
    } else if (t.id === "move-btn") { callAction("move_abs", [Number($("move-target").value)]); }
    else if (t.id === "stop-btn") { callAction("stop", []); }
    else if (t.id === "home-btn") { callAction("move_home", []); }
    else if (t.id === "step-plus") { callAction("move_rel", [Number($("step").value)]); }
    else if (t.id === "step-minus") { callAction("move_rel", [-Number($("step").value)]); }
  });

  async function loadWires() {
    const w = await api("GET", "wires");
    $("wires").innerHTML = w.protocols.map((p) =>
      `<div class="panel" data-protocol="${esc(p.protocol)}"><h3>${esc(p.protocol)} <small>${esc(p.service)}</small></h3>` +
      `<div>listening: ${p.listeners.length ? p.listeners.map((l) => "<code>" + esc(l) + "</code>").join(", ") : "<small>nothing</small>"}</div>` +
      (p.peers.length ? `<table><thead><tr><th>peer</th><th>state</th><th>device</th><th>counters</th></tr></thead><tbody>` +
        p.peers.map((c) => `<tr><td>${esc(c.peer)}</td><td>${esc(c.state)}</td><td>${esc(c.device || "")}</td><td>${esc(Object.entries(c.counters || {}).map(([k, v]) => k + " " + v).join(", "))}</td></tr>`).join("") +
        "</tbody></table>" : "<div><small>no peers connected</small></div>") + "</div>").join("");
    $("leases").tBodies[0].innerHTML = w.leases.map((l) =>
      `<tr><td>${esc(l.owner)}</td><td>${esc(l.resources.join(", "))}</td><td>${l.ttl === null ? "–" : fmt(l.ttl) + " s"}</td></tr>`).join("") ||
      "<tr><td colspan=3><small>no leases</small></td></tr>";
  }
  async function loadLog(reset) {
    if (reset) { state.logAfter = 0; $("log").tBodies[0].innerHTML = ""; }
    const q = `log?level=${$("log-level").value}&component=${encodeURIComponent($("log-component").value)}&after=${state.logAfter}&limit=500`;
    const data = await api("GET", q), body = $("log").tBodies[0];
    for (const e of data.events) {
      state.logAfter = Math.max(state.logAfter, e.seq);
      const tr = document.createElement("tr"); tr.className = "lvl-" + e.level;
      tr.innerHTML = `<td>${new Date(e.time * 1000).toLocaleTimeString()}</td><td>${esc(e.level)}</td><td><small>${esc(e.component)}</small></td><td>${esc(e.text)}</td>`;
      body.insertBefore(tr, body.firstChild);
    }
    while (body.rows.length > 1000) body.deleteRow(body.rows.length - 1);
  }
  $("log-level").onchange = () => loadLog(true);
  $("log-component").oninput = () => loadLog(true);
  $("token").onchange = () => localStorage.setItem("labToken", $("token").value);

  async function render() {
    const r = route();
    show(r.view);
    showError(null);
    clearInterval(state.pollTimer);
    if (r.view !== "device" && state.device) { send({ op: "unwatch", device: state.device }); state.device = null; }
    try {
      if (r.view === "lab") { await loadLab(); state.pollTimer = setInterval(() => loadLab().catch(() => {}), 2000); }
      else if (r.view === "device") await loadDevice(r.arg);
      else if (r.view === "wires") { await loadWires(); state.pollTimer = setInterval(() => loadWires().catch(() => {}), 2000); }
      else if (r.view === "log") { await loadLog(true); state.pollTimer = setInterval(() => loadLog(false).catch(() => {}), 1000); }
    } catch (e) { showError(e); }
  }
  window.addEventListener("hashchange", render);
  api("GET", "session").then((s) => {
    state.session = s.session; state.tokenRequired = s.token_required;
    $("who").textContent = "you are " + s.owner + (s.read_only ? " · read-only" : "");
    $("token-box").hidden = !s.token_required;
    $("token").value = localStorage.getItem("labToken") || "";
  }).catch(showError).finally(() => { connect(); render(); });
})();
