// The orders console: plain JavaScript over the public HTTP/JSON API
// (/v1/orders...), no build step. Search streams NDJSON as it arrives.
"use strict";

const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("orders-token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("orders-token", tokenInput.value));

function headers(extra) {
  const h = Object.assign({ accept: "application/json" }, extra || {});
  if (tokenInput.value) h.authorization = "Bearer " + tokenInput.value;
  return h;
}

// An error answer of the API: {code, status, message, details, request_id}.
function showError(error) {
  const box = $("error");
  if (!error) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = "";
  const title = document.createElement("strong");
  title.textContent = (error.status || "ERROR") + ": ";
  box.append(title, document.createTextNode(error.message || "request failed"));
  if (error.request_id) {
    const id = document.createElement("div");
    id.append("request id: ");
    const code = document.createElement("code");
    code.className = "request-id";
    code.textContent = error.request_id;
    id.append(code);
    box.append(id);
  }
}

async function errorOf(response) {
  try { return await response.json(); }
  catch { return { status: "HTTP " + response.status, message: response.statusText,
                   request_id: response.headers.get("x-request-id") }; }
}

// ---- search as you type, results streaming in ----
let searching = null;
let timer = null;
$("q").addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(search, 120);
});

async function search() {
  if (searching) searching.abort();
  const controller = new AbortController();
  searching = controller;
  const q = $("q").value;
  const body = $("results");
  body.textContent = "";
  $("status").textContent = "searching…";
  let count = 0;
  try {
    const response = await fetch("/v1/orders?q=" + encodeURIComponent(q),
      { headers: headers({ accept: "application/x-ndjson" }), signal: controller.signal });
    if (!response.ok) { showError(await errorOf(response)); $("status").textContent = ""; return; }
    showError(null);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      // A newer search has started: this one's rows are stale.
      if (searching !== controller) { reader.cancel(); return; }
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines) {
        if (!line) continue;
        const item = JSON.parse(line);
        if (item.error) { showError(item.error); continue; }
        body.append(row(item));
        count++;
      }
      $("status").textContent = count + " found so far…";
    }
    $("status").textContent = (count === 1 ? "1 order" : count + " orders") +
      (q ? " with an item containing \u201c" + q + "\u201d" : "");
  } catch (e) {
    if (e.name !== "AbortError") showError({ message: String(e) });
  }
}

function row(order) {
  const tr = document.createElement("tr");
  tr.tabIndex = 0;
  tr.dataset.id = order.id;
  const cells = [order.id, (order.items || []).join(", "), order.price ?? 0, order.destination || ""];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    if (i === 0) td.className = "id";
    td.textContent = text;
    tr.append(td);
  });
  tr.addEventListener("click", () => open(order.id));
  tr.addEventListener("keydown", (e) => {
    if (e.key === "Enter") open(order.id);
    if (e.key === "ArrowDown" && tr.nextElementSibling) tr.nextElementSibling.focus();
    if (e.key === "ArrowUp") (tr.previousElementSibling || $("q")).focus();
  });
  return tr;
}

// ---- open an order ----
async function open(id) {
  const response = await fetch("/v1/orders/" + encodeURIComponent(id), { headers: headers() });
  if (!response.ok) { showError(await errorOf(response)); return; }
  showError(null);
  const order = await response.json();
  $("detail-id").textContent = order.id;
  const fields = $("detail-fields");
  fields.textContent = "";
  for (const [name, value] of [["Items", (order.items || []).join("\n")],
    ["Description", order.description || ""], ["Price", order.price ?? 0],
    ["Destination", order.destination || ""]]) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.style.whiteSpace = "pre-line";
    fields.append(dt, dd);
  }
  $("detail").hidden = false;
}
$("close").addEventListener("click", () => { $("detail").hidden = true; });

// ---- add an order, violations next to their field ----
$("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  // By name: `form.id` would be the form's own id attribute.
  const field = (name) => form.elements.namedItem(name);
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
  $("add-result").textContent = "";
  const order = {
    items: field("items").value.split("\n").map((s) => s.trim()).filter((s) => s),
    description: field("description").value,
    destination: field("destination").value,
  };
  if (field("id").value.trim()) order.id = field("id").value.trim();
  const price = field("price").value.trim();
  if (price) order.price = Number.isNaN(Number(price)) ? price : Number(price);
  const response = await fetch("/v1/orders", {
    method: "POST", headers: headers({ "content-type": "application/json" }), body: JSON.stringify(order),
  });
  if (response.status === 201) {
    const { id } = await response.json();
    showError(null);
    $("add-result").textContent = "Added order " + id;
    form.reset();
    search();
    return;
  }
  const error = await errorOf(response);
  showError(error);
  let placed = false;
  for (const detail of error.details || []) {
    for (const v of detail.fieldViolations || []) {
      const name = v.field.replace(/\[.*$/, "");
      const slot = form.querySelector('.field-error[data-field="' + name + '"]');
      if (!slot) continue;
      slot.textContent += (slot.textContent ? "; " : "") + v.field + ": " + v.description;
      if (field(name)) field(name).classList.add("invalid");
      placed = true;
    }
  }
  // A JSON-level error (e.g. a price that is not a number) names the field in its message.
  const match = !placed && /field `(\w+)`/.exec(error.message || "");
  if (match) {
    const slot = form.querySelector('.field-error[data-field="' + match[1] + '"]');
    if (slot) { slot.textContent = error.message; field(match[1]).classList.add("invalid"); }
  }
});

// ---- keyboard ----
document.addEventListener("keydown", (e) => {
  const typing = /INPUT|TEXTAREA/.test(document.activeElement.tagName);
  if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); }
  if (e.key === "Escape") $("detail").hidden = true;
  if (e.key === "ArrowDown" && document.activeElement === $("q") && $("results").firstElementChild) {
    e.preventDefault();
    $("results").firstElementChild.focus();
  }
});

search();
