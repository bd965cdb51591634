// The operator page: runs by status, one run's live conversation, its waiting calls.
// Plain ES modules, no build step. Every URL is relative to the page, so the page works
// behind a proxy under a path prefix. Text from runs is only ever set as textContent.

import { $, api, notify, runPath, token } from "./http.js";

const RUNS_REFRESH_MS = 5000; // one list query per open page every 5 s

const view = {
  runId: null, // the selected run
  source: null, // its EventSource
  streaming: new Map(), // turn -> {el, attempt, text}: replies still streaming
  generation: 0, // bumps on every selection, so a stale stream writes nothing
};

// ------------------------------------------------------------------ runs list

function runFields(run) {
  return {
    id: run.workflow_id ?? run.id,
    agent: run.agent ?? "",
    status: run.status ?? run.state ?? "",
    started: run.start_time ?? run.started ?? "",
  };
}

async function loadRuns() {
  const status = $("status-filter").value;
  const query = status ? `?status=${encodeURIComponent(status)}` : "";
  let runs;
  try {
    runs = await api(`runs${query}`);
  } catch (error) {
    notify(`Could not list runs: ${error.message}`, true);
    return;
  }
  const list = $("runs");
  list.replaceChildren();
  const items = Array.isArray(runs) ? runs : (runs?.runs ?? []);
  if (!items.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = status ? `No ${status.replaceAll("_", " ")} runs.` : "No runs yet.";
    list.append(empty);
  }
  for (const run of items.map(runFields)) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.runId = run.id;
    if (run.id === view.runId) button.setAttribute("aria-current", "true");
    const id = span("id", run.id);
    const started = run.started ? new Date(run.started).toLocaleTimeString() : "";
    const meta = span(
      "meta",
      [run.agent, run.status.replaceAll("_", " "), started].filter(Boolean).join(" · "),
    );
    button.append(id, meta);
    button.setAttribute("aria-label", `Open run ${run.id} (${run.agent}, ${run.status})`);
    button.addEventListener("click", () => selectRun(run.id));
    li.append(button);
    list.append(li);
  }
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

// ------------------------------------------------------------------ one run

function selectRun(id) {
  view.generation += 1;
  view.source?.close();
  view.runId = id;
  view.streaming.clear();
  for (const button of document.querySelectorAll("#runs button")) {
    button.toggleAttribute("aria-current", button.dataset.runId === id);
    if (button.dataset.runId === id) button.setAttribute("aria-current", "true");
  }
  $("run").hidden = false;
  $("run-title").textContent = id;
  setState("");
  $("conversation").replaceChildren();
  $("pending").replaceChildren();
  $("pending-box").hidden = true;
  history.replaceState(null, "", `#${encodeURIComponent(id)}`);
  follow(id, view.generation);
  refreshPending();
}

function setState(state, reason = "") {
  const badge = $("run-state");
  badge.textContent = state.replaceAll("_", " ");
  badge.className = `badge ${state}`;
  badge.hidden = !state;
  $("run-reason").textContent = reason;
  $("run-reason").hidden = !reason;
  const ended = ["completed", "failed", "cancelled", "budget_exceeded", "guardrail_tripped"].includes(state);
  $("cancel-run").disabled = ended;
  for (const control of $("composer").querySelectorAll("button, input")) control.disabled = ended;
}

function follow(id, generation) {
  // EventSource sends no headers: the token rides in the query (the server allows it there),
  // and a dropped connection resumes by itself from the last `id:` (Last-Event-ID).
  const query = token() ? `?access_token=${encodeURIComponent(token())}` : "";
  const source = new EventSource(runPath(id, `/events${query}`));
  view.source = source;
  const live = (handler) => (message) => {
    if (generation !== view.generation) return;
    handler(JSON.parse(message.data));
  };
  source.addEventListener("item", live((event) => showItem(event.item)));
  source.addEventListener("delta", live((event) => showDelta(event.delta)));
  source.addEventListener("state", live((event) => {
    setState(event.state);
    refreshPending();
  }));
  source.addEventListener("end", live((event) => {
    setState(event.state);
    showReason(id, generation, event.state);
    source.close();
    dropStreaming();
    refreshPending();
    loadRuns();
  }));
  source.addEventListener("error", (event) => {
    if (generation !== view.generation) return;
    if (event.data) {
      // The server's own `error` event: reconnecting would only meet it again.
      source.close();
      notify(`Live stream: ${JSON.parse(event.data).error}`, true);
    } else if (source.readyState === EventSource.CLOSED) {
      notify("The live stream closed; select the run again to reconnect.", true);
    }
  });
}

// Why the run ended as it did, as `durable-agent status` says it: the `status` query's reason
// (a failure's message, the guardrail that tripped, the budget reached, a hook's stop). The
// live stream carries states only; the reason is read once, when the run has ended.
async function showReason(id, generation, state) {
  let run;
  try {
    run = await api(runPath(id));
  } catch (error) {
    notify(`Could not read why the run ended: ${error.message}`, true);
    return;
  }
  if (generation === view.generation && run?.state?.reason) setState(state, run.state.reason);
}

function append(el) {
  const list = $("conversation");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(el);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function message(role, who, text) {
  const li = document.createElement("li");
  li.className = `msg ${role}`;
  li.append(span("who", who), document.createTextNode(text));
  return li;
}

// A message's images and files, named (the page never shows their bytes: a large one is
// only a reference in payload storage, read by the model activity alone).
function withAttachments(li, attachments) {
  if (!attachments?.length) return li;
  const list = document.createElement("ul");
  list.className = "attachments";
  for (const part of attachments) {
    const entry = document.createElement("li");
    entry.textContent = `${part.type}: ${part.filename || part.url || part.file_id || part.media_type}`;
    list.append(entry);
  }
  li.append(list);
  return li;
}

function showItem(item) {
  if (item.role === "event") {
    if (item.kind === "interrupted") dropStreaming();
    append(statusEvent(item));
    return;
  }
  if (item.role === "assistant") {
    dropStreaming(); // the message holds what streamed, and the rest
    const li = message("assistant", item.agent || "assistant", item.content || "");
    li.dataset.final = "true";
    if (item.tool_calls?.length) {
      const calls = document.createElement("ul");
      calls.className = "calls";
      for (const call of item.tool_calls) {
        const entry = document.createElement("li");
        const code = document.createElement("code");
        code.textContent = `${call.name}(${call.arguments})`;
        entry.append("calls ", code);
        calls.append(entry);
      }
      li.append(calls);
    }
    append(li);
  } else if (item.role === "tool") {
    const li = message("tool", `result of ${item.name || item.tool_call_id}`, item.content);
    li.classList.toggle("error", Boolean(item.is_error));
    append(withAttachments(li, item.attachments));
  } else if (item.role === "user") {
    append(withAttachments(message("user", item.name || "user", item.content), item.attachments));
  } else {
    append(message(item.role, item.role, item.content ?? ""));
  }
}

function statusEvent(item) {
  const li = document.createElement("li");
  li.className = "event";
  const data = Object.entries(item.data || {})
    .filter(([key]) => key !== "partial")
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
  li.textContent = `${item.source} · ${item.kind.replaceAll("_", " ")}${data ? ` — ${data}` : ""}`;
  return li;
}

function showDelta(delta) {
  if (delta.kind === "superseded") {
    // The call is tried again: what its earlier attempts streamed goes.
    const shown = view.streaming.get(delta.turn);
    shown?.el.remove();
    view.streaming.delete(delta.turn);
    return;
  }
  if (delta.kind !== "text" || !delta.text) return;
  let shown = view.streaming.get(delta.turn);
  if (shown && delta.attempt > shown.attempt) {
    shown.el.remove();
    shown = undefined;
  }
  if (!shown) {
    const el = message("assistant streaming", "assistant · streaming", "");
    el.setAttribute("aria-busy", "true");
    shown = { el, attempt: delta.attempt, text: el.lastChild };
    view.streaming.set(delta.turn, shown);
    append(el);
  }
  shown.text.appendData(delta.text);
  const list = $("conversation");
  if (list.scrollHeight - list.scrollTop - list.clientHeight < 80) list.scrollTop = list.scrollHeight;
}

function dropStreaming() {
  for (const shown of view.streaming.values()) shown.el.remove();
  view.streaming.clear();
}

// ------------------------------------------------------------------ waiting calls

async function refreshPending() {
  const id = view.runId;
  if (!id) return;
  let pending;
  try {
    pending = await api(runPath(id, "/pending"));
  } catch (error) {
    if (error.status !== 404) notify(`Could not read waiting calls: ${error.message}`, true);
    return;
  }
  if (id !== view.runId) return;
  const list = $("pending");
  list.replaceChildren(...(pending || []).map(pendingCall));
  $("pending-box").hidden = !list.children.length;
}

function pendingCall(call) {
  const li = document.createElement("li");
  li.dataset.toolCallId = call.tool_call_id;
  const title = document.createElement("strong");
  title.textContent = `${call.name} — ${call.kind.replaceAll("_", " ")}`;
  const args = document.createElement("pre");
  args.textContent = call.arguments;
  li.append(title, args);
  const base = runPath(view.runId, `/calls/${encodeURIComponent(call.tool_call_id)}`);
  if (call.kind === "approval") {
    if (call.digest) li.append(span("digest", `digest ${call.digest}`));
    const reasonId = `reason-${call.tool_call_id}`;
    const row = document.createElement("div");
    row.className = "row";
    const label = labelFor(reasonId, "Reason (optional)");
    const reason = document.createElement("input");
    reason.id = reasonId;
    const approve = button(`Approve`, "primary", () =>
      act(`${base}/approve`, { reason: reason.value || null, digest: call.digest }, `Approved ${call.name}.`),
    );
    approve.setAttribute("aria-label", `Approve ${call.name}`);
    const reject = button(`Reject`, "danger", () =>
      act(`${base}/reject`, { reason: reason.value || null, digest: call.digest }, `Rejected ${call.name}.`),
    );
    reject.setAttribute("aria-label", `Reject ${call.name}`);
    row.append(approve, reject, label, reason);
    li.append(row);
  } else {
    const boxId = `result-${call.tool_call_id}`;
    const box = document.createElement("textarea");
    box.id = boxId;
    box.rows = 3;
    box.placeholder = '"a string", or any JSON';
    const isError = document.createElement("input");
    isError.type = "checkbox";
    isError.id = `error-${call.tool_call_id}`;
    const files = document.createElement("input");
    files.type = "file";
    files.multiple = true;
    files.id = `attach-${call.tool_call_id}`;
    const resolve = button("Resolve", "primary", async () => {
      let content;
      try {
        content = JSON.parse(box.value);
      } catch {
        notify("The result must be JSON (a string goes in quotes).", true);
        box.focus();
        return;
      }
      const attachments = await readAttachments(files);
      if (attachments === null) return;
      const body = { content, is_error: isError.checked };
      if (attachments.length) body.attachments = attachments;
      act(`${base}/resolve`, body, `Answered ${call.name}.`);
    });
    resolve.setAttribute("aria-label", `Resolve ${call.name}`);
    const row = document.createElement("div");
    row.className = "row";
    row.append(
      resolve,
      isError,
      labelFor(isError.id, "is an error"),
      labelFor(files.id, `Attach to the result of ${call.name}`),
      files,
    );
    li.append(labelFor(boxId, "Result (JSON)"), box, row);
  }
  return li;
}

function labelFor(id, text) {
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = text;
  return label;
}

function button(text, className, onClick) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = className;
  el.textContent = text;
  el.addEventListener("click", onClick);
  return el;
}

// What the run answered to a submission (a SubmitResult's detail), after what was done.
function said(answer, done) {
  return answer && "accepted" in answer && answer.detail ? `${done} (${answer.detail})` : done;
}

async function act(path, body, done) {
  try {
    const answer = await api(path, { method: "POST", body });
    notify(said(answer, done));
  } catch (error) {
    notify(`Refused: ${error.message}`, true);
  }
  refreshPending();
}

// ------------------------------------------------------------------ wiring

function init() {
  $("status-filter").addEventListener("change", loadRuns);
  $("refresh-runs").addEventListener("click", loadRuns);
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send("messages", "Sent.");
  });
  $("interrupt").addEventListener("click", () => send("interrupt", "Interrupted."));
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("composer").requestSubmit();
  });
  $("cancel-run").addEventListener("click", async () => {
    if (!view.runId || !confirm(`Cancel run ${view.runId}?`)) return;
    await act(runPath(view.runId, "/cancel"), {}, "Cancel requested.");
  });
  // The list follows new runs and state changes; not while a keyboard user is in it.
  setInterval(() => {
    if (document.visibilityState === "visible" && !$("runs").contains(document.activeElement)) {
      loadRuns();
    }
  }, RUNS_REFRESH_MS);
  // The list first: if the server needs a token, it is asked for before the stream opens.
  loadRuns().then(() => {
    const fromHash = decodeURIComponent(location.hash.slice(1));
    if (fromHash) selectRun(fromHash);
  });
}

async function send(kind, done) {
  const box = $("message");
  const content = box.value.trim();
  if (!view.runId || !content) {
    box.focus();
    return;
  }
  const attach = $("attach");
  const attachments = await readAttachments(attach);
  if (attachments === null) return;
  const body = attachments.length ? { content, attachments } : { content };
  try {
    const answer = await api(runPath(view.runId, `/${kind}`), { method: "POST", body });
    box.value = "";
    attach.value = "";
    notify(said(answer, done));
  } catch (error) {
    notify(`Refused: ${error.message}`, true);
  }
}

// The files chosen in a file input, as the API takes them; null (and said) when one
// cannot be read.
async function readAttachments(input) {
  try {
    return await Promise.all([...input.files].map(readAttachment));
  } catch (error) {
    notify(`Could not read the file: ${error.message}`, true);
    return null;
  }
}

// A chosen file as the API takes it: a data URL, an image or a file by its type (the server
// moves large bytes to payload storage, so the run keeps a reference).
function readAttachment(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const media_type = file.type || "application/octet-stream";
      const image = media_type.startsWith("image/");
      const part = { type: image ? "image" : "file", url: reader.result, media_type };
      if (!image) part.filename = file.name;
      resolve(part);
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

init();
