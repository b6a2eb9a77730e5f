// The authors' page: plain DOM, no framework. Every text that comes from a user or the API goes in with
// textContent (never innerHTML), so a notification's text is shown as text, never run as markup.
"use strict";

const API = "api/";
const HEADERS = {"X-Portal-Request": "1"};  // the anti-forgery header the API requires
const $ = (id) => document.getElementById(id);
const state = {me: null, teams: null, next: "", detailId: "", poll: 0, composeId: "", lastCount: null, author: null};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function call(method, path, body) {
  const init = {method, headers: {...HEADERS}, credentials: "same-origin"};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.blob();
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

function say(text) { $("status").textContent = text; }

function fail(error) {
  const box = $("error");
  box.hidden = false;
  if (error.status !== 401) {
    box.textContent = error.message;
    return;
  }
  // Entra ID's sign-in page cannot be shown inside a frame (a Teams tab): a window of its own can.
  const link = el("a", {href: location.href.split("#")[0], target: "_blank", rel: "noopener", text: "open the page in a new window"});
  box.replaceChildren(`Not signed in: ${error.message}. Reload the page to sign in again, or `, link, ".");
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

function confirmDialog(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), {once: true});
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("confirm-no").focus();
  });
}

// --- views -------------------------------------------------------------------------------------------------
function show(view) {
  for (const name of ["list", "new", "detail"]) $("view-" + name).hidden = name !== view;
  clearInterval(state.poll);
  clearError();
  say("");
  // A screen reader hears where it is now, and the keyboard starts from there.
  const heading = $("view-" + view).querySelector("h2");
  heading.tabIndex = -1;
  heading.focus();
}

async function route() {
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/n/")) await showDetail(decodeURIComponent(hash.slice(4)));
    else if (hash === "#/new") await showCompose();
    else await showList(true);
  } catch (error) {
    fail(error);
  }
  document.body.dataset.ready = "true";
}

// --- the list ----------------------------------------------------------------------------------------------
async function showList(fresh) {
  show("list");
  const body = $("list").tBodies[0];
  if (fresh) { body.replaceChildren(); state.next = ""; }
  const query = new URLSearchParams({limit: "20"});
  if ($("filter-state").value) query.set("state", $("filter-state").value);
  if ($("filter-mine").checked) query.set("mine", "1");
  else if (state.author) query.set("author", state.author.id);
  $("filter-author").hidden = !state.author || $("filter-mine").checked;
  $("filter-author-name").textContent = state.author ? state.author.name : "";
  if (state.next) query.set("after", state.next);
  say("Loading…");
  const data = await call("GET", "notify?" + query);
  for (const item of data.notifications) body.append(listRow(item));
  state.next = data.next || "";
  $("list-more").hidden = !state.next;
  $("list-empty").hidden = body.rows.length > 0;
  say(`${body.rows.length} notification${body.rows.length === 1 ? "" : "s"} shown`);
}

function listRow(item) {
  const link = el("a", {href: "#/n/" + encodeURIComponent(item.id), text: item.summary || item.id});
  return el("tr", {},
    el("td", {}, link),
    el("td", {text: audienceText(item.to)}),
    el("td", {}, el("span", {class: "state " + item.state, text: item.state})),
    el("td", {text: `${item.sent} / ${item.total}`}),
    el("td", {}, authorButton(item.createdBy)),
    el("td", {text: item.createdAt ? new Date(item.createdAt).toLocaleString() : ""}));
}

function authorButton(author) {
  if (!author) return "";
  const button = el("button", {type: "button", class: "link", title: "Show only this author's", text: author.name});
  button.addEventListener("click", () => { state.author = author; showList(true).catch(fail); });
  return button;
}

function audienceText(to) {
  if (to === "all") return "everyone";
  if (!to || typeof to !== "object") return String(to);
  const [kind, value] = Object.entries(to)[0] || ["", ""];
  return `${kind}: ${Array.isArray(value) ? value.length + " people" : value}`;
}

// --- compose -----------------------------------------------------------------------------------------------
const AUDIENCES = [
  ["all", "Everyone the bot knows"], ["team", "A team (each member, in their chat)"],
  ["teamChannel", "A team's General channel"], ["channel", "A channel of the Bot Framework (e.g. msteams)"],
  ["group", "An Entra group"], ["users", "A list of people"], ["tenant", "The whole organisation"],
  ["conversation", "One conversation"], ["user", "One user"],
];

async function showCompose() {
  show("new");
  if (!state.composeId) state.composeId = "n-" + crypto.randomUUID();  // a retried send is the same notification
  $("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const allowed = state.me.audiences;  // null: every audience
  const select = $("audience");
  if (!select.options.length) {
    for (const [value, label] of AUDIENCES) {
      if (allowed === null || allowed.includes(value) || (value === "all" && allowed === null)) {
        select.append(el("option", {value, text: label}));
      }
    }
    if (!select.options.length) select.append(el("option", {value: "", text: "Your role may not send"}));
  }
  await audienceChanged();
  renderPreview();
  $("text").focus();
}

async function audienceChanged() {
  const kind = $("audience").value;
  $("audience-team").hidden = !(kind === "team" || kind === "teamChannel");
  $("audience-people").hidden = kind !== "users";
  const needsId = ["channel", "group", "tenant", "conversation", "user"].includes(kind);
  $("audience-value").hidden = !needsId;
  $("audience-id-label").textContent = {channel: "Channel id", group: "Group object id", tenant: "Tenant id",
    conversation: "Conversation id", user: "User id"}[kind] || "Id";
  $("audience-count").textContent = "";
  if (!$("audience-team").hidden && state.teams === null) {
    const data = await call("GET", "teams");
    state.teams = data.teams.filter((team) => team.installed);
    $("team").replaceChildren(...state.teams.map((team) => el("option", {value: team.id, text: team.name || team.id})));
    if (!state.teams.length) $("team").append(el("option", {value: "", text: "The bot is in no team yet"}));
  }
}

function contentKind() { return document.querySelector("input[name=kind]:checked").value; }

function kindChanged() {
  const kind = contentKind();
  $("text-fields").hidden = kind !== "text";
  $("card-fields").hidden = kind !== "card";
  $("dialog-fields").hidden = kind !== "dialog";
  $("ack-fields").hidden = kind === "dialog";
  renderPreview();
}

function addLocale() {
  const index = $("locales").children.length;
  const row = el("div", {class: "locale"},
    el("label", {for: `locale-${index}`, text: "Language"}),
    el("input", {id: `locale-${index}`, class: "locale-name", placeholder: "fr-FR", autocomplete: "off"}),
    el("label", {for: `locale-text-${index}`, text: "Message in that language"}),
    el("textarea", {id: `locale-text-${index}`, class: "locale-text", rows: "3"}));
  $("locales").append(row);
  row.querySelector("input").focus();
}

function parsedCard() {
  const text = $("card").value.trim();
  if (!text) return null;
  const card = JSON.parse(text);
  if (!card || typeof card !== "object" || Array.isArray(card)) throw new Error("a card is a JSON object");
  return card;
}

function target() {
  const kind = $("audience").value;
  if (kind === "all") return "all";
  if (kind === "team" || kind === "teamChannel") return {[kind]: $("team").value};
  if (kind === "users") return {users: $("people").value.split(/[\s,;]+/).filter(Boolean)};
  return {[kind]: $("audience-id").value.trim()};
}

function request() {
  const kind = contentKind();
  const body = {id: state.composeId, to: target()};
  if (kind === "dialog") {
    body.dialog = "survey";
  } else if (kind === "card") {
    body.attachments = [{contentType: "application/vnd.microsoft.card.adaptive", content: parsedCard()}];
  } else {
    const variants = [...$("locales").children]
      .map((row) => [row.querySelector(".locale-name").value.trim(), row.querySelector(".locale-text").value])
      .filter(([locale, text]) => locale && text.trim());
    const main = $("text").value;
    if (variants.length) {
      const fallback = $("default-locale").value.trim() || "en";
      body.text = Object.fromEntries([[fallback, main], ...variants]);
      body.defaultLocale = fallback;
    } else {
      body.text = main;
      if ($("default-locale").value.trim()) body.locale = $("default-locale").value.trim();
    }
  }
  if (kind !== "dialog" && $("ack").checked) body.ack = {title: $("ack-title").value.trim() || "Got it"};
  if ($("when").value) body.notBefore = new Date($("when").value).toISOString();  // the author's zone, in UTC
  return body;
}

async function previewAudience() {
  clearError();
  $("audience-count").textContent = "Counting…";
  try {
    const answer = await call("POST", "notify", {...request(), dryRun: true});
    state.lastCount = answer.recipients;
    const parts = [`${answer.recipients} recipient${answer.recipients === 1 ? "" : "s"}`];
    if (answer.withChat !== undefined) parts.push(`${answer.withChat} already chat with the bot`);
    if (answer.toInstall) parts.push(`${answer.toInstall} need the app installed first`);
    if (answer.unreachable) {
      for (const [why, count] of Object.entries(answer.unreachable)) parts.push(`${count} unreachable (${why})`);
    }
    $("audience-count").textContent = parts.join(", ");
    return answer.recipients;
  } catch (error) {
    $("audience-count").textContent = "";
    fail(error);
    return null;
  }
}

async function send(event) {
  event.preventDefault();
  const count = await previewAudience();
  if (count === null) return;
  const when = $("when").value ? ` at ${new Date($("when").value).toLocaleString()}` : " now";
  if (!await confirmDialog(`Send this notification to ${count} recipient${count === 1 ? "" : "s"}${when}?`)) return;
  try {
    const answer = await call("POST", "notify", request());
    const id = answer.id || state.composeId;
    state.composeId = "";
    $("compose").reset();
    $("locales").replaceChildren();
    location.hash = "#/n/" + encodeURIComponent(id);
  } catch (error) {
    fail(error);
  }
}

function renderPreview() {
  const box = $("preview");
  box.replaceChildren();
  const kind = contentKind();
  if (kind === "dialog") {
    box.append(el("p", {text: "The survey's first question, then the next ones as the recipient answers."}));
    return;
  }
  if (kind === "card") {
    $("card-error").textContent = "";
    try {
      const card = parsedCard();
      if (card) renderCard(card, box);
    } catch (error) {
      $("card-error").textContent = "The card is not valid JSON yet: " + error.message;
    }
  } else {
    box.append(el("p", {class: "text", text: $("text").value}));
  }
  if ($("ack").checked) box.append(el("button", {type: "button", disabled: "", text: $("ack-title").value || "Got it"}));
}

// --- an Adaptive Card, rendered as far as a preview needs (text, facts, images, columns, buttons) -----------
function renderCard(card, into, depth = 0) {
  if (depth > 10) return;
  for (const item of card.body || []) renderElement(item, into, depth);
  const actions = card.actions || [];
  if (actions.length) into.append(renderActions(actions));
}

function renderElement(item, into, depth) {
  if (!item || typeof item !== "object" || depth > 10) return;
  switch (item.type) {
    case "TextBlock":
      into.append(el("p", {class: `tb ${item.weight === "Bolder" ? "bold" : ""} size-${item.size || "default"}`,
        text: String(item.text ?? "")}));
      break;
    case "RichTextBlock":
      into.append(el("p", {class: "tb", text: (item.inlines || []).map((i) => typeof i === "string" ? i : i.text || "").join("")}));
      break;
    case "Image": {
      const url = String(item.url || "");
      if (/^(https:|data:image\/)/.test(url)) into.append(el("img", {src: url, alt: String(item.altText || "")}));
      break;
    }
    case "FactSet": {
      const list = el("dl", {class: "facts"});
      for (const fact of item.facts || []) list.append(el("dt", {text: String(fact.title ?? "")}), el("dd", {text: String(fact.value ?? "")}));
      into.append(list);
      break;
    }
    case "Container": {
      const box = el("div", {class: "container"});
      for (const child of item.items || []) renderElement(child, box, depth + 1);
      into.append(box);
      break;
    }
    case "ColumnSet": {
      const row = el("div", {class: "columns"});
      for (const column of item.columns || []) {
        const cell = el("div", {class: "column"});
        for (const child of column.items || []) renderElement(child, cell, depth + 1);
        row.append(cell);
      }
      into.append(row);
      break;
    }
    case "ActionSet":
      into.append(renderActions(item.actions || []));
      break;
    default:
      into.append(el("p", {class: "unknown", text: `(${String(item.type)} is not previewed)`}));
  }
}

function renderActions(actions) {
  const bar = el("div", {class: "card-actions"});
  for (const action of actions) {
    const title = String(action.title || action.type || "");
    if (action.type === "Action.OpenUrl" && /^https:/.test(String(action.url || ""))) {
      bar.append(el("a", {href: String(action.url), target: "_blank", rel: "noopener noreferrer", text: title}));
    } else {
      bar.append(el("button", {type: "button", disabled: "", text: title}));
    }
  }
  return bar;
}

// --- one notification ----------------------------------------------------------------------------------------
async function showDetail(id) {
  show("detail");
  state.detailId = id;
  await refreshDetail();
  const tick = async () => {
    if (state.detailId !== id || $("view-detail").hidden) return;
    try { await refreshDetail(); } catch (error) { fail(error); }
  };
  state.poll = setInterval(tick, 2000);
}

async function refreshDetail() {
  const data = await call("GET", "notify/" + encodeURIComponent(state.detailId));
  state.detail = data;
  $("detail-title").textContent = "Notification " + data.id;
  $("detail-summary").textContent = data.summary || "";
  $("detail-state").textContent = data.state;
  $("detail-state").className = "state " + data.state;
  $("detail-to").textContent = "to " + audienceText(data.to) +
    (data.notBefore ? `, at ${new Date(data.notBefore).toLocaleString()}` : "");
  const finished = data.total - data.pending;
  $("progress").max = Math.max(data.total, 1);
  $("progress").value = finished;
  $("progress-text").textContent = `${finished} of ${data.total} done` + (data.scanComplete ? "" : " (still counting the audience)");
  pairs($("funnel"), [["Audience", data.total], ["Sent", data.sent], ["Read", data.read ?? 0],
    ["Acknowledged", data.acknowledged], ["Reacted", data.reactions]]);
  const rows = [["Failed", data.failed], ["Skipped (inactive)", data.skipped.inactive], ["Skipped (gone)", data.skipped.gone],
    ["Cancelled", data.cancelled], ["Pending", data.pending]];
  if (data.version) rows.push(["Edits", data.version], ["Updated", data.updated], ["Recalled", data.recalled]);
  if (data.stopReason) rows.push(["Stopped because", data.stopReason]);
  pairs($("counts"), rows);
  const errors = $("errors").tBodies[0];
  errors.replaceChildren(...data.errors.map((e) => el("tr", {}, el("td", {text: e.code}), el("td", {text: e.message}))));
  $("errors-box").hidden = !data.errors.length;
  $("audit").replaceChildren(...(data.audit || []).map((a) =>
    el("li", {text: `${new Date(a.at).toLocaleString()}: ${a.action} by ${a.by}`})));
  const open = data.state === "running" || data.state === "scheduled";
  $("cancel").hidden = !open;
  $("edit").hidden = data.kind !== "message" || data.recalledAll;
  $("recall").hidden = data.kind !== "message" || data.recalledAll;
  $("download-answers").hidden = data.kind !== "dialog";
  say(`${data.state}: ${finished} of ${data.total} done`);
}

function pairs(list, rows) {
  list.replaceChildren();
  for (const [name, value] of rows) list.append(el("dt", {text: name}), el("dd", {text: String(value ?? 0)}));
}

async function act(question, method, suffix, body) {
  if (!await confirmDialog(question)) return;
  try {
    await call(method, "notify/" + encodeURIComponent(state.detailId) + suffix, body);
    await refreshDetail();
  } catch (error) {
    fail(error);
  }
}

async function download(kind) {
  try {
    const blob = await call("GET", `notify/${encodeURIComponent(state.detailId)}/${kind}`);
    const link = el("a", {href: URL.createObjectURL(blob), download: `${state.detailId}-${kind}.csv`});
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  } catch (error) {
    fail(error);
  }
}

async function submitEdit(event) {
  event.preventDefault();
  const body = {};
  if ($("edit-text").value.trim()) body.text = $("edit-text").value;
  if ($("edit-card").value.trim()) {
    try {
      body.attachments = [{contentType: "application/vnd.microsoft.card.adaptive", content: JSON.parse($("edit-card").value)}];
    } catch (error) {
      fail(new Error("The new card is not valid JSON: " + error.message));
      return;
    }
  }
  await act(`Update the ${state.detail.sent} delivered message${state.detail.sent === 1 ? "" : "s"}?`, "PATCH", "", body);
  $("edit-form").hidden = true;
}

// --- start ---------------------------------------------------------------------------------------------------
async function start() {
  try {
    state.me = await call("GET", "me");
    $("who").textContent = `Signed in as ${state.me.name}` + (state.me.roles.length ? ` (${state.me.roles.join(", ")})` : " (no role)");
    $("nav-new").hidden = Array.isArray(state.me.audiences) && !state.me.audiences.length;
  } catch (error) {
    fail(error);
    document.body.dataset.ready = "true";
    return;
  }
  $("filter-state").addEventListener("change", () => showList(true).catch(fail));
  $("filter-mine").addEventListener("change", () => showList(true).catch(fail));
  $("list-more").addEventListener("click", () => showList(false).catch(fail));
  $("filter-author-clear").addEventListener("click", () => { state.author = null; showList(true).catch(fail); });
  for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", kindChanged);
  for (const id of ["text", "card", "ack", "ack-title"]) $(id).addEventListener("input", renderPreview);
  $("audience").addEventListener("change", () => audienceChanged().catch(fail));
  $("add-locale").addEventListener("click", addLocale);
  $("preview-audience").addEventListener("click", previewAudience);
  $("compose").addEventListener("submit", send);
  $("recall").addEventListener("click", () => act(
    `Recall: delete all ${state.detail.sent} delivered messages and send no more? This cannot be undone.`, "POST", "/recall"));
  $("cancel").addEventListener("click", () => act(
    `Cancel: send nothing more (${state.detail.pending} not sent yet)? This cannot be undone.`, "DELETE", ""));
  $("edit").addEventListener("click", () => { $("edit-form").hidden = false; $("edit-text").focus(); });
  $("edit-form").addEventListener("submit", submitEdit);
  $("download-report").addEventListener("click", () => download("report"));
  $("download-answers").addEventListener("click", () => download("answers"));
  $("download-audit").addEventListener("click", () => download("audit"));
  window.addEventListener("hashchange", route);
  await route();
}

document.addEventListener("DOMContentLoaded", start);
