// The chat page: one conversation at a time, each turn streamed from the server (SSE over
// fetch, since EventSource cannot POST). Plain JS, no build step; every request is
// same-origin, so an API-key cookie (set by opening /?api_key=KEY) rides along.
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log");
let session = null; // id of the current conversation, null before the first message
let reference = null; // gallery id the next message edits (starts a new conversation)
let running = false;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function status(text) {
  $("status").textContent = text || "";
}

function scrollDown() {
  log.scrollTop = log.scrollHeight;
}

function grid(results, sessionId) {
  const box = el("div", "results");
  const why = el("div", "why");
  why.hidden = true;
  for (const r of results) {
    const fig = el("figure");
    if (r.image_url) {
      const img = el("img");
      img.src = r.image_url;
      img.alt = r.id;
      img.loading = "lazy";
      img.title = `${r.id} (score ${r.score.toFixed(2)}): click to edit this image`;
      fig.append(img, el("figcaption", "", r.id));
      fig.addEventListener("click", () => pickReference(r.id, r.image_url, fig));
    } else {
      // a captions-only gallery: the item's text stands where its image would be
      const text = el("blockquote", "caption-text", r.caption || "(no text)");
      text.title = `${r.id} (score ${r.score.toFixed(2)})`;
      fig.classList.add("text-only");
      fig.append(text, el("figcaption", "", r.id));
    }
    if (sessionId) {
      // why it ranks: the terms of its score in this (the latest) turn
      const ask = el("button", "why-button", "why?");
      ask.type = "button";
      ask.title = `why ${r.id} ranks here`;
      ask.addEventListener("click", (ev) => {
        ev.stopPropagation();
        explain(sessionId, r.id, why);
      });
      fig.append(ask);
    }
    box.append(fig);
  }
  const wrap = el("div");
  wrap.append(box, why);
  return wrap;
}

async function explain(sessionId, id, panel) {
  const path = id.split("/").map(encodeURIComponent).join("/");
  panel.hidden = false;
  panel.textContent = "…";
  try {
    const response = await fetch(`/sessions/${sessionId}/why/${path}`);
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    panel.textContent = "";
    const place = body.rank ? `#${body.rank}, score ${body.score.toFixed(2)}` : "not ranked";
    panel.append(el("div", "why-head", `${id}: ${place} (searched with ${body.how})`));
    for (const t of body.terms) {
      const sign = t.value >= 0 ? "+" : "−";
      panel.append(el("div", "why-term", `${sign}${Math.abs(t.value).toFixed(2)}  ${t.label}`));
    }
  } catch (err) {
    panel.textContent = `could not explain ${id}: ${err.message || err}`;
  }
}

function pickReference(id, url, fig) {
  document.querySelectorAll("figure.picked").forEach((f) => f.classList.remove("picked"));
  if (fig) fig.classList.add("picked");
  reference = id;
  $("reference-id").textContent = id;
  $("reference-img").src = url;
  $("reference").hidden = false;
  $("message").placeholder = "how should it change? e.g. make the circle blue";
  $("message").focus();
}

function clearReference() {
  reference = null;
  $("reference").hidden = true;
  $("message").placeholder = "your answer, or another detail";
  document.querySelectorAll("figure.picked").forEach((f) => f.classList.remove("picked"));
}

function showTurn(box, turn) {
  const details = el("details", "transcript");
  details.append(el("summary", "", "what the agent did"));
  for (const line of turn.transcript) details.append(el("div", "", line));
  const meta = el("div", "meta");
  const badge = el("span", "strategy", turn.strategy);
  badge.title = "how this turn searched: dar (text + generated image), stitch (edit of a reference), text";
  meta.append("turn " + turn.turn + " · ", badge, " · query: " + (turn.query || "-"));
  box.append(meta);
  if (turn.reference_id && turn.turn === 0) {
    // a composed query: show the image being edited beside what was searched
    const ref = el("div", "edited");
    const img = el("img", "reference-thumb");
    img.src = "/images/" + turn.reference_id.split("/").map(encodeURIComponent).join("/");
    img.alt = `reference ${turn.reference_id}`;
    ref.append("editing ", img, " " + turn.reference_id);
    box.append(ref);
  }
  if (turn.descriptions && turn.descriptions.length) {
    const wrote = el("details", "descriptions");
    wrote.append(el("summary", "", `the ${turn.descriptions.length} target descriptions searched`));
    for (const d of new Set(turn.descriptions)) wrote.append(el("div", "", d));
    box.append(wrote);
  }
  if (turn.imagined && turn.imagined.length) {
    const seen = el("div", "imagined");
    seen.append("what I imagined: ");
    for (const url of turn.imagined) {
      const img = el("img");
      img.src = url;
      img.alt = "an image generated from the query";
      seen.append(img);
    }
    box.append(seen);
  }
  box.append(grid(turn.results, turn.session_id), details);
  const q = el("div", "question", turn.question || "(no question; add a detail, or start a new search)");
  box.append(q);
  if (turn.question && turn.options && turn.options.length) {
    // one button per expected answer (and "i don't know"): a click sends it as the reply
    const opts = el("div", "options");
    for (const option of [...turn.options, "i don't know"]) {
      const b = el("button", "option", option);
      b.type = "button";
      b.addEventListener("click", () => {
        if (!running) send(option);
      });
      opts.append(b);
    }
    box.append(opts);
  }
  $("message").placeholder = turn.question ? "your answer (or pick one above)" : "another detail";
}

// POST and read the Server-Sent Events the turn sends: node..., then result or error.
async function streamTurn(url, body, box) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let result = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      let data = "";
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      const payload = data ? JSON.parse(data) : {};
      if (event === "session") session = payload.session_id;
      else if (event === "node") {
        const steps = box.querySelector(".steps");
        if (steps.textContent === "working…") steps.textContent = "steps:";
        steps.textContent += " [" + payload.node + "]";
      }
      else if (event === "result") result = payload;
      else if (event === "error") throw new Error(payload.detail);
    }
  }
  if (!result) throw new Error("the stream ended without a result; try again");
  return result;
}

async function send(text) {
  running = true;
  $("send").disabled = true;
  // earlier questions' buttons answer nothing any more
  document.querySelectorAll(".options button").forEach((b) => (b.disabled = true));
  // earlier rankings are gone from the state: only the newest turn can explain itself
  document.querySelectorAll(".why-button").forEach((b) => (b.disabled = true));
  const editing = reference;
  const user = el("div", "user", text);
  if (editing) user.textContent = `edit ${editing}: ${text}`;
  const box = el("div", "turn");
  box.append(el("div", "steps", "working…"));
  log.append(user, box);
  scrollDown();
  status("");
  try {
    let turn;
    if (editing || !session) {
      session = null;
      const body = { message: text };
      if (editing) body.reference_id = editing;
      turn = await streamTurn("/sessions/stream", body, box);
      clearReference();
    } else {
      turn = await streamTurn(`/sessions/${session}/messages/stream`, { message: text }, box);
    }
    showTurn(box, turn);
    status(`session ${turn.session_id}`);
  } catch (err) {
    box.append(el("div", "error", String(err.message || err)));
  } finally {
    running = false;
    $("send").disabled = false;
    scrollDown();
  }
}

async function upload(file) {
  const form = new FormData();
  form.append("file", file);
  status("uploading…");
  const response = await fetch("/uploads", { method: "POST", body: form });
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    status(`upload refused: ${body.detail}`);
    return;
  }
  const box = el("div", "turn");
  const img = el("img");
  img.src = body.image_url;
  img.style.maxWidth = "120px";
  box.append(
    el("div", "meta", "your upload, and the gallery images closest to it: click one to edit it"),
    img,
    grid(body.nearest),
  );
  log.append(box);
  status("");
  scrollDown();
}

$("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("message").value.trim();
  if (!text || running) return;
  $("message").value = "";
  send(text);
});
$("reference-clear").addEventListener("click", clearReference);
$("new").addEventListener("click", () => {
  session = null;
  clearReference();
  $("message").placeholder = "a red circle on a blue background";
  log.append(el("hr"));
  status("new search: describe the image you look for");
});
$("upload").addEventListener("change", (ev) => {
  if (ev.target.files.length) upload(ev.target.files[0]);
  ev.target.value = "";
});

fetch("/health")
  .then((r) => r.json())
  .then((h) => {
    $("about").textContent = `${h.gallery_size} images · strategy ${h.strategy} · sessions in ${h.checkpoint}`;
  })
  .catch(() => {
    $("about").textContent = "server unreachable";
  });
