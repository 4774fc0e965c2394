// edge preview: live views from /stream/<camera>.mjpg, status from /api/status every second,
// and the zone editor (points clicked on a frozen frame -> /api/check -> YAML and problems).
"use strict";

const $ = (sel) => document.querySelector(sel);
const cards = new Map(); // camera -> {root, img, bar}
let status = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function cameraCard(cam) {
  const img = el("img", { class: "live", alt: `live view of ${cam.name}` });
  img.src = `/stream/${encodeURIComponent(cam.name)}.mjpg`;
  img.onerror = () => setTimeout(() => { img.src = `/stream/${encodeURIComponent(cam.name)}.mjpg?r=${Date.now()}`; }, 2000);
  const bar = el("div", { class: "bar" });
  const edit = el("button", { class: "edit-btn", textContent: "Draw zone or mask" });
  edit.onclick = () => openEditor(cam.name);
  const root = el("div", { class: "card", "data-camera": cam.name }, img, bar, el("div", { class: "bar" }, edit));
  $("#cameras").append(root);
  return { root, img, bar };
}

function renderBar(card, cam) {
  const parts = [
    el("span", { class: "name", textContent: cam.name }),
    el("span", { class: `state ${cam.state}`, textContent: cam.state }),
    el("span", { class: "fps", textContent: `${cam.fps.toFixed(1)} fps` }),
    el("span", { class: "infer", textContent: cam.infer_ms == null ? "" : `inference ${cam.infer_ms.toFixed(1)} ms` }),
    el("span", { class: "dim", textContent: `processed ${cam.processed}, dropped ${cam.dropped}, events ${cam.events}` }),
  ];
  for (const s of cam.shapes) {
    parts.push(el("span", {}, el("span", { class: "chip", style: `background:${s.colour}` }), s.name));
  }
  if (cam.error) parts.push(el("span", { class: "problem", textContent: cam.error }));
  card.bar.replaceChildren(...parts);
}

function renderEvents(events) {
  const items = events.map((e) => {
    const when = (e.ts || "").replace("T", " ").replace(/\.\d+Z$/, "Z");
    const li = el("li", { "data-event": e.id },
      el("div", {}, el("b", { textContent: `${e.type} ` }), `${e.rule} on ${e.camera}`),
      el("div", { class: "dim", textContent: `${e.label || ""}${e.track_id == null ? "" : " #" + e.track_id}${e.direction ? " " + e.direction : ""} ${e.score == null ? "" : e.score.toFixed(2)} · ${when}` }));
    if (e.picture) li.append(el("img", { src: `/event/${encodeURIComponent(e.id)}.jpg`, alt: `snapshot of ${e.rule}`, loading: "lazy" }));
    return li;
  });
  const list = $("#events");
  const ids = events.map((e) => e.id).join();
  if (list.dataset.ids !== ids) { list.replaceChildren(...items); list.dataset.ids = ids; }
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    status = await r.json();
  } catch (err) {
    $("#health").textContent = "daemon not answering";
    $("#health").className = "problem";
    return;
  }
  $("#device").textContent = `${status.device} · edge ${status.version}`;
  $("#health").textContent = status.healthy ? "healthy" : `problems: ${status.problems.join("; ")}`;
  $("#health").className = status.healthy ? "" : "problem";
  $("#config").textContent = status.config || "";
  for (const cam of status.cameras) {
    if (!cards.has(cam.name)) cards.set(cam.name, cameraCard(cam));
    renderBar(cards.get(cam.name), cam);
  }
  for (const [name, card] of cards) {
    if (!status.cameras.some((c) => c.name === name)) { card.root.remove(); cards.delete(name); }
  }
  renderEvents(status.events);
}

// -- the zone editor -----------------------------------------------------------------------------

const editor = { camera: null, image: null, points: [], timer: null, seq: 0 };

function kind() { return document.querySelector("input[name=kind]:checked").value; }

function openEditor(camera) {
  editor.camera = camera;
  editor.points = [];
  editor.image = null; // clicks count only on this camera's frame, once it is shown
  $("#editor-camera").textContent = camera;
  $("#editor").classList.add("open");
  const cam = status && status.cameras.find((c) => c.name === camera);
  $("#rule-names").replaceChildren(...((cam && cam.rules) || []).map((r) => el("option", { value: r })));
  const img = new Image();
  img.onload = () => {
    if (editor.camera !== camera) return; // another camera was picked meanwhile
    editor.image = img;
    const canvas = $("#editor-canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.dataset.ready = "1";
    draw();
  };
  $("#editor-canvas").dataset.ready = "";
  img.src = `/frame/${encodeURIComponent(camera)}.jpg?raw=1&t=${Date.now()}`;
  update();
  $("#editor").scrollIntoView();
}

function draw() {
  const canvas = $("#editor-canvas");
  const ctx = canvas.getContext("2d");
  if (!editor.image) return;
  const w = canvas.width, h = canvas.height;
  ctx.drawImage(editor.image, 0, 0, w, h);
  const cam = status && status.cameras.find((c) => c.name === editor.camera);
  ctx.lineWidth = Math.max(1, w / 400);
  for (const s of (cam && cam.shapes) || []) {
    ctx.setLineDash([8, 6]);
    ctx.strokeStyle = s.colour;
    path(ctx, s.points, w, h, s.kind !== "line");
    ctx.stroke();
  }
  ctx.setLineDash([]);
  const pts = editor.points;
  if (pts.length) {
    ctx.strokeStyle = kind() === "mask" ? "#bbbbbb" : "#ffffff";
    ctx.fillStyle = kind() === "mask" ? "rgba(128,128,128,0.45)" : "rgba(47,111,237,0.25)";
    const area = kind() !== "line" && pts.length > 2;
    path(ctx, pts, w, h, area);
    if (area) ctx.fill();
    ctx.lineWidth = Math.max(2, w / 300);
    ctx.stroke();
    ctx.fillStyle = "#ffffff";
    for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x * w, y * h, Math.max(3, w / 200), 0, 2 * Math.PI); ctx.fill(); }
  }
}

function path(ctx, pts, w, h, close) {
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
  if (close) ctx.closePath();
}

function drawing() {
  return {
    kind: kind(), camera: editor.camera, points: editor.points,
    rule: $("#rule-name").value.trim(), labels: $("#rule-labels").value,
  };
}

function update() {
  draw();
  $("#zone-fields").style.display = kind() === "mask" ? "none" : "";
  clearTimeout(editor.timer);
  editor.timer = setTimeout(check, 120);
}

async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

async function check() {
  const seq = ++editor.seq;
  const npoints = editor.points.length;
  const st = $("#check-status");
  try {
    const res = await post("/api/check", drawing());
    if (seq !== editor.seq) return; // a newer check is on its way
    $("#yaml").textContent = res.yaml;
    $("#problems").replaceChildren(...res.problems.map((p) => el("li", { textContent: p })));
    st.textContent = res.ok ? "valid: edge check-config accepts the config with this drawing" : "not valid yet";
    $("#note").textContent = res.note || "";
    st.className = res.ok ? "ok" : "bad";
    $("#save").disabled = !res.ok;
  } catch (err) {
    if (seq !== editor.seq) return;
    st.textContent = `check failed: ${err.message}`;
    st.className = "bad";
    $("#save").disabled = true;
  }
  st.dataset.points = String(npoints); // what the shown result was checked for

}

$("#editor-canvas").addEventListener("click", (ev) => {
  if (!editor.image) return;
  const c = ev.currentTarget.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (ev.clientX - c.left) / c.width));
  const y = Math.min(1, Math.max(0, (ev.clientY - c.top) / c.height));
  if (kind() === "line" && editor.points.length >= 2) editor.points.pop(); // a line: the last click ends it
  editor.points.push([Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000]);
  update();
});
$("#undo").onclick = () => { editor.points.pop(); update(); };
$("#clear").onclick = () => { editor.points = []; update(); };
$("#close").onclick = () => { $("#editor").classList.remove("open"); editor.camera = null; };
for (const r of document.querySelectorAll("input[name=kind]")) r.onchange = update;
$("#rule-name").oninput = update;
$("#rule-labels").oninput = update;
$("#copy").onclick = () => navigator.clipboard && navigator.clipboard.writeText($("#yaml").textContent);
$("#save").onclick = async () => {
  try {
    const res = await post("/api/save", drawing());
    $("#saved-path").textContent = res.saved ? `written to ${res.saved} (the config itself is unchanged)` : res.problems.join("; ");
  } catch (err) {
    $("#saved-path").textContent = `not saved: ${err.message}`;
  }
};

refresh();
setInterval(refresh, 1000);
