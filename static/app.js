// Enclave's pages. Everything here builds DOM nodes with textContent, never
// HTML strings: answers, passages, file names and reasons are untrusted text.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

async function api(method, url, body) {
  const opts = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf() } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  if (res.status === 401) {
    location.href = "/login?expired=1";
    throw new Error("session expired");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// ---- login / logout / password ----
// Run `action` when the form is submitted, showing any error in `errorId`.
function onSubmit(form, errorId, action) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const err = document.getElementById(errorId);
    err.textContent = "";
    try {
      await action();
    } catch (x) {
      err.textContent = x.message;
    }
  });
}

function initLogin() {
  const form = document.getElementById("login-form");
  if (!form) return;
  onSubmit(form, "login-error", async () => {
    const res = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || res.statusText);
    location.href = "/";
  });
}

function initPassword() {
  const form = document.getElementById("password-form");
  if (!form) return;
  onSubmit(form, "password-error", async () => {
    if (form.new.value !== form.confirm.value) throw new Error("The two new passwords differ.");
    await api("POST", "/api/password", { current_password: form.current.value, new_password: form.new.value });
    location.href = "/";
  });
}

function initLogout() {
  const b = document.getElementById("logout");
  if (!b) return;
  b.addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (_) { /* already gone */ }
    location.href = "/login";
  });
}

// ---- chat ----
// The passage view of a citation, with its sentence highlighted.
function citeHref(c) {
  let href = "/passages/" + c.chunk_id;
  if (c.quote_start !== undefined && c.quote_end !== undefined) href += "?from=" + c.quote_start + "&to=" + c.quote_end;
  return href;
}

function renderAnswer(container, text, citations, sources) {
  container.textContent = "";
  const byNumber = new Map();
  for (const s of sources || []) byNumber.set(s.number, "/passages/" + s.chunk_id);
  for (const c of citations || []) if (!byNumber.has(c.number) || c.quote_start !== undefined) byNumber.set(c.number, citeHref(c));
  // Split on [n] markers; each known one becomes a link to its passage.
  const parts = String(text).split(/(\[\d+\])/);
  for (const part of parts) {
    const m = /^\[(\d+)\]$/.exec(part);
    if (m && byNumber.has(Number(m[1]))) {
      container.append(el("a", { href: byNumber.get(Number(m[1])), class: "cite", text: part }));
    } else {
      container.append(document.createTextNode(part));
    }
  }
}

// The quotes: the passages' own words, shown first.
function renderQuotes(article, quotes, before) {
  if (!quotes || quotes.length === 0) return null;
  const box = el("section", { class: "quotes" }, el("h3", { text: "From the documents" }));
  for (const q of quotes) {
    const link = el("a", { href: citeHref(q), class: "quote-source", text: q.document_title + ", page " + q.page });
    box.append(el("blockquote", { class: "quote" }, el("p", { text: q.quote }), el("footer", {}, link)));
  }
  article.insertBefore(box, before || null);
  return box;
}

// Which tier answered, and how far the answer is checked.
function renderProvenance(article, verification, tier, before) {
  const says = {
    verified: ["verified", "Answered by " + tier + " · verified: every sentence is supported by the cited passage."],
    partial: ["partial", "Answered by " + tier + " · partly verified: sentences the documents do not support were removed."],
    quoted: ["quoted", "Quoted from the documents: no model answer could be verified against them, so only their own words are shown."],
    unverified: ["unverified", "Plain chat with " + tier + " through the API: NOT checked against the documents, and none were given to the model."],
  }[verification];
  if (!says) return;
  article.insertBefore(el("p", { class: "provenance " + says[0], text: says[1] }), before || null);
}

function renderRemoved(article, removed) {
  if (!removed || removed.length === 0) return;
  const list = el("ul", { class: "removed" });
  for (const r of removed) list.append(el("li", {}, el("del", { text: r.text }), el("small", { text: " removed: " + (r.reason || "not supported by the documents") })));
  article.append(el("h3", { text: "Removed: not supported by the documents" }), list);
}

function renderCitations(article, citations) {
  if (!citations || citations.length === 0) return;
  const list = el("ol", { class: "citations" });
  for (const c of citations) {
    const link = el("a", { href: citeHref(c), class: "citation-link", text: c.document_title + ", page " + c.page });
    const item = el("li", { value: String(c.number) }, link);
    if (c.quote) item.append(el("q", { text: c.quote }));
    list.append(item);
  }
  article.append(el("h3", { text: "Supported by" }), list);
}

// A finished answer: quotes, the verified answer (unless it is the quotes
// themselves), its provenance and the sources behind it.
function renderFinished(article, answer, a) {
  if (!article.querySelector(".quotes")) renderQuotes(article, a.quotes, answer);
  if (a.verification === "quoted") {
    answer.remove();
    renderProvenance(article, a.verification, a.tier);
    renderRemoved(article, a.removed);
    return;
  }
  renderAnswer(answer, a.text, a.citations, a.sources);
  renderProvenance(article, a.verification, a.tier, answer.nextSibling);
  // A supporting sentence already shown as a quote is not listed twice.
  const quoted = new Set((a.quotes || []).map((q) => q.chunk_id + ":" + q.quote_start));
  renderCitations(article, (a.citations || []).filter((c) => !quoted.has(c.chunk_id + ":" + c.quote_start)));
  renderRemoved(article, a.removed);
}

function renderFeedback(article, messageId, rating, comment) {
  const box = el("div", { class: "feedback" });
  const status = el("span", { class: "feedback-status" });
  const note = el("input", { type: "text", maxlength: "2000", placeholder: "Comment (optional)", class: "feedback-comment" });
  if (comment) note.value = comment;
  const send = async (value) => {
    try {
      await api("POST", "/api/messages/" + messageId + "/feedback", { rating: value, comment: note.value });
      status.textContent = value > 0 ? "Thanks: marked helpful." : "Thanks: marked not helpful.";
    } catch (x) { status.textContent = x.message; }
  };
  const up = el("button", { type: "button", class: "thumb-up", title: "Helpful", text: "👍" });
  const down = el("button", { type: "button", class: "thumb-down", title: "Not helpful", text: "👎" });
  up.addEventListener("click", () => send(1));
  down.addEventListener("click", () => send(-1));
  if (rating === 1) status.textContent = "Marked helpful.";
  if (rating === -1) status.textContent = "Marked not helpful.";
  box.append(up, down, note, status);
  article.append(box);
}

function noteDegraded(article) {
  article.append(el("p", { class: "degraded", text: "The vector store was unreachable: passages were found by keyword search alone, so this answer may miss relevant documents." }));
}

function decorateStored() {
  for (const article of document.querySelectorAll("article.message")) {
    let citations = [], checks = {};
    try { citations = JSON.parse(article.dataset.citations || "[]"); } catch (_) { citations = []; }
    try { checks = JSON.parse(article.dataset.checks || "{}"); } catch (_) { checks = {}; }
    const answer = article.querySelector(".answer");
    const verification = article.dataset.verification;
    if (article.dataset.status === "answered" && verification) {
      renderFinished(article, answer, { text: answer.textContent, citations, sources: [], quotes: checks.quotes, verification, tier: article.dataset.tier, removed: checks.removed });
    } else if (article.dataset.status === "answered") {
      renderAnswer(answer, answer.textContent, citations, []);
      renderCitations(article, citations);
    }
    if (article.dataset.status === "not_covered") {
      answer.classList.add("not-covered");
      answer.prepend(el("strong", { class: "badge", text: "Not in the documents. " }));
    }
    if (["answered", "not_covered"].includes(article.dataset.status)) renderFeedback(article, article.dataset.message);
    if (article.dataset.degraded === "true") noteDegraded(article);
  }
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(event, data ? JSON.parse(data) : {});
    }
  }
}

function initChat() {
  const form = document.getElementById("ask-form");
  if (!form) return;
  decorateStored();
  const thread = document.getElementById("thread");
  const messages = document.getElementById("messages");
  const err = document.getElementById("ask-error");
  const button = document.getElementById("ask-button");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    const question = form.question.value.trim();
    if (!question) return;
    const conv = Number(thread.dataset.conversation) || null;
    const answer = el("div", { class: "answer streaming" });
    const status = el("p", { class: "status", text: "Searching your documents…" });
    const article = el("article", { class: "message" }, el("p", { class: "question", text: question }), status, answer);
    messages.append(article);
    form.question.value = "";
    button.disabled = true;
    try {
      const res = await fetch("/api/ask", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ question, conversation_id: conv }),
      });
      if (res.status === 401) { location.href = "/login?expired=1"; return; }
      if (!res.ok) {
        const data = await res.json().catch(() => ({}));
        const wait = res.headers.get("Retry-After");
        throw new Error((data.error || res.statusText) + (wait ? " (retry in " + wait + " s)" : ""));
      }
      let shown = [];
      let lastCitations = [];
      await readEvents(res, (event, data) => {
        if (event === "meta") {
          thread.dataset.conversation = data.conversation_id;
          article.dataset.message = data.message_id;
          history.replaceState(null, "", "/chat/" + data.conversation_id);
        } else if (event === "quotes") {
          renderQuotes(article, data.quotes, status);
          status.textContent = "Checking an answer against the documents…";
        } else if (event === "queued") {
          status.textContent = data.position > 0 ? "Waiting for the model (" + data.position + " ahead)…" : "Next in line…";
        } else if (event === "started") {
          status.textContent = "Answering with " + data.tier + "; each sentence appears once the documents support it…";
        } else if (event === "sentence") {
          // Only verified sentences ever arrive here.
          shown.push(data.text);
          if (data.citation) lastCitations.push(data.citation);
          renderAnswer(answer, shown.join(" "), lastCitations, []);
        } else if (event === "escalating") {
          shown = [];
          lastCitations = [];
          answer.textContent = "";
          status.textContent = "Too little of that answer was supported; asking " + data.to + "…";
        } else if (event === "done") {
          const a = data.answer;
          status.remove();
          answer.classList.remove("streaming");
          if (a.status === "not_covered") {
            answer.classList.add("not-covered");
            renderAnswer(answer, a.text, [], []);
            answer.prepend(el("strong", { class: "badge", text: "Not in the documents. " }));
          } else if (a.verification && a.verification !== "none") {
            renderFinished(article, answer, a);
          } else {
            renderAnswer(answer, a.text, a.citations, a.sources);
          }
          renderFeedback(article, article.dataset.message);
          if (data.degraded) noteDegraded(article);
        } else if (event === "error") {
          status.textContent = data.error;
        }
      });
    } catch (x) {
      status.remove();
      err.textContent = x.message;
    } finally {
      button.disabled = false;
    }
  });
}

// ---- admin: uploads and documents ----
function uploadOne(file, collection, list) {
  const row = el("li", { class: "upload" });
  const name = el("span", { class: "file", text: file.name });
  const bar = el("progress", { max: "100", value: "0" });
  const state = el("span", { class: "state", text: "uploading" });
  row.append(name, bar, state);
  list.append(row);
  const body = new FormData();
  body.append("collection", collection);
  body.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/uploads");
  xhr.setRequestHeader("X-CSRF-Token", csrf());
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
  });
  xhr.addEventListener("load", () => {
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch (_) { data = {}; }
    if (xhr.status >= 400) {
      state.textContent = "refused: " + (data.error || xhr.statusText);
      row.classList.add("rejected");
      return;
    }
    const u = (data.uploads || [])[0];
    if (u) poll(u.id, state, row);
  });
  xhr.addEventListener("error", () => { state.textContent = "upload failed (connection)"; });
  xhr.send(body);
}

function showUpload(u, state, row) {
  state.textContent = u.state + (u.detail ? ": " + u.detail : "");
  row.dataset.state = u.state;
  if (u.state === "rejected" || u.state === "failed") row.classList.add("rejected");
}

async function poll(id, state, row) {
  for (;;) {
    let u;
    try { u = await api("GET", "/api/uploads/" + id); } catch (x) { state.textContent = x.message; return; }
    showUpload(u, state, row);
    if (["done", "duplicate", "rejected", "failed"].includes(u.state)) return;
    await new Promise((r) => setTimeout(r, 700));
  }
}

function initDocuments() {
  const form = document.getElementById("upload-form");
  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const list = document.getElementById("upload-progress");
      for (const file of form.querySelector("#upload-files").files) uploadOne(file, form.collection.value.trim(), list);
      form.reset();
    });
  }
  for (const b of document.querySelectorAll("button.delete-document")) {
    b.addEventListener("click", async () => {
      if (!confirm("Erase “" + b.dataset.title + "” and everything derived from it? This cannot be undone.")) return;
      const box = document.getElementById("receipt");
      try {
        const r = await api("DELETE", "/api/documents/" + b.dataset.id);
        box.hidden = false;
        box.textContent = "";
        box.append(el("h2", { text: "Deletion receipt" }), el("pre", { text: JSON.stringify(r, null, 2) }));
        b.closest("tr").remove();
      } catch (x) {
        box.hidden = false;
        box.textContent = "Delete failed: " + x.message;
      }
    });
  }
}

// ---- admin: generic forms and buttons that call the API ----
function showResult(value) {
  const out = document.getElementById("api-result");
  if (!out) return;
  out.hidden = false;
  out.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function initApiForms() {
  for (const form of document.querySelectorAll("form.api-form")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {};
      for (const [k, v] of new FormData(form).entries()) if (v !== "") body[k] = v;
      // Checkboxes are yes/no, sent as booleans (an unticked one is absent from FormData).
      for (const box of form.querySelectorAll("input[type=checkbox][name]")) body[box.name] = box.checked;
      let url = form.dataset.url;
      if (form.dataset.urlTemplate) {
        url = form.dataset.urlTemplate.replace("{user_id}", encodeURIComponent(body.user_id));
        delete body.user_id;
      }
      try {
        const r = await api(form.dataset.method, url, body);
        if (r.password) showResult("Password for " + r.username + " (shown only now): " + r.password);
        else if (r.secret) showResult("API token " + r.token.name + " for " + r.token.username + " (shown only now; store it in the tool that will use it): " + r.secret);
        else location.reload();
      } catch (x) { showResult("Failed: " + x.message); }
    });
  }
  for (const b of document.querySelectorAll("button.api-action")) {
    b.addEventListener("click", async () => {
      try {
        const r = await api(b.dataset.method, b.dataset.url, b.dataset.body ? JSON.parse(b.dataset.body) : undefined);
        if (r.password) showResult("New password for " + r.username + " (shown only now): " + r.password);
        else location.reload();
      } catch (x) { showResult("Failed: " + x.message); }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  initLogin();
  initLogout();
  initPassword();
  initChat();
  initDocuments();
  initApiForms();
});
