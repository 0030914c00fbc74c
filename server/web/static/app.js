// The todo-chat page: conversations, a streaming chat, and the task list, over the same REST
// and chat API as any other client. No framework and no build step: edit and reload.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "todo-chat.token";
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const CHANGING_TOOLS = new Set(["add_task", "complete_task", "reopen_task", "delete_task", "update_task"]);

const state = { token: null, user: "", conversationId: null, busy: false, listening: null };

// ---------------------------------------------------------------- signing in

function tokenFromLink() {
  // The token travels in the fragment, which never reaches a server; take it out of the
  // address bar at once so it is not bookmarked or shared by accident.
  const match = location.hash.match(/^#token=([^&]+)/);
  if (!match) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

function subjectOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return String(JSON.parse(atob(payload)).sub || "");
  } catch {
    return "";
  }
}

function conversationKey() {
  return `todo-chat.conversation.${state.user}`;
}

function signIn(token) {
  state.token = token;
  state.user = subjectOf(token);
  localStorage.setItem(TOKEN_KEY, token);
  $("who").textContent = state.user ? `Signed in as ${state.user}` : "";
  $("sign-out").hidden = false;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  const saved = Number(localStorage.getItem(conversationKey())) || null;
  refreshConversations();
  refreshTasks();
  if (saved) openConversation(saved);
  else showConversation(null, []);
  listenForEvents();
  $("message").focus();
}

function signOut(message) {
  state.token = null;
  if (state.listening) state.listening.abort();
  $("notices").replaceChildren(); // the next person to sign in does not see them
  localStorage.removeItem(TOKEN_KEY);
  $("who").textContent = "";
  $("sign-out").hidden = true;
  $("app").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message || "";
  $("token-input").value = "";
  $("token-input").focus();
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${state.token}`, ...extra };
}

async function failure(response) {
  const body = await response.json().catch(() => ({}));
  const error = new ApiError(response.status, body.detail || response.statusText, response.headers.get("Retry-After"));
  if (response.status === 401) signOut(`Your sign-in was not accepted (${error.message}). Sign in again.`);
  return error;
}

async function api(path, options = {}) {
  const init = { ...options, headers: headers(options.body ? { "Content-Type": "application/json" } : {}) };
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// ---------------------------------------------------------------- conversations

async function refreshConversations() {
  let page;
  try {
    page = await api("/api/conversations?limit=50");
  } catch {
    return;
  }
  const list = $("conversation-list");
  list.replaceChildren(...page.data.map(conversationItem));
}

function conversationItem(conversation) {
  const item = document.createElement("li");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  open.textContent = conversation.title;
  open.title = conversation.title;
  open.setAttribute("aria-current", String(conversation.id === state.conversationId));
  open.addEventListener("click", () => openConversation(conversation.id));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "✕";
  remove.setAttribute("aria-label", `Delete conversation "${conversation.title}"`);
  remove.addEventListener("click", () => deleteConversation(conversation));
  item.append(open, remove);
  return item;
}

async function openConversation(id) {
  const messages = [];
  let cursor = null;
  try {
    do {
      const query = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api(`/api/conversations/${id}/messages?${query}`);
      messages.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);
  } catch (error) {
    if (error.status === 404) {
      localStorage.removeItem(conversationKey());
      showConversation(null, []);
    }
    return;
  }
  showConversation(id, messages);
  refreshConversations();
}

function showConversation(id, messages) {
  state.conversationId = id;
  if (id) localStorage.setItem(conversationKey(), String(id));
  else localStorage.removeItem(conversationKey());
  const list = $("messages");
  list.replaceChildren();
  for (const message of messages) {
    const bubble = addMessage(message.role, message.content);
    for (const call of message.tool_calls || []) bubble.tools.append(toolLine(call));
    if (message.failed) bubble.item.classList.add("error");
  }
  $("empty-chat").hidden = messages.length > 0;
  list.scrollTop = list.scrollHeight;
}

async function deleteConversation(conversation) {
  if (!confirm(`Delete the conversation "${conversation.title}"?`)) return;
  try {
    await api(`/api/conversations/${conversation.id}`, { method: "DELETE" });
  } catch {
    return;
  }
  if (conversation.id === state.conversationId) showConversation(null, []);
  refreshConversations();
}

// ---------------------------------------------------------------- messages

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const label = document.createElement("span");
  label.className = "visually-hidden";
  label.textContent = role === "user" ? "You: " : "Assistant: ";
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  const tools = document.createElement("ul");
  tools.className = "tools";
  item.append(label, body, tools);
  $("messages").append(item);
  $("empty-chat").hidden = true;
  return { item, body, tools };
}

function describeCall(call) {
  const args = call.arguments || {};
  const result = call.result || {};
  if (result.error) return `${call.name.replace("_", " ")} failed: ${result.error}`;
  const task = result.task || {};
  const named = (title, id) => (title ? `"${title}" (#${id})` : `#${id}`);
  switch (call.name) {
    case "add_task": return `Added ${named(task.title || args.title, task.id)}`;
    case "complete_task": return `Completed ${named(result.title, result.task_id ?? args.task_id)}`;
    case "reopen_task": return `Reopened ${named(result.title, result.task_id ?? args.task_id)}`;
    case "delete_task": return `Deleted ${named(result.title, result.task_id ?? args.task_id)}`;
    case "update_task": return `Updated ${named(result.title, result.task_id ?? args.task_id)}`;
    case "get_task": return `Looked at ${named(result.title, args.task_id)}`;
    case "list_tasks": return `Looked up tasks (${(result.tasks || []).length} found)`;
    default: return call.name;
  }
}

function toolLine(call) {
  const item = document.createElement("li");
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const shown = document.createElement("pre");
  details.append(summary, shown);
  item.append(details);
  item.update = (next) => {
    summary.textContent = next.result === undefined ? `${next.name}…` : describeCall(next);
    shown.textContent = JSON.stringify({ arguments: next.arguments, result: next.result }, null, 2);
  };
  item.update(call);
  return item;
}

// ---------------------------------------------------------------- sending

function problem(bubble, text, retry) {
  bubble.item.classList.add("error");
  const line = document.createElement("p");
  line.className = "problem";
  line.setAttribute("role", "alert");
  line.textContent = text;
  if (retry) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Retry";
    button.addEventListener("click", () => {
      button.disabled = true;
      send(retry, { again: true });
    });
    line.append(button);
  }
  bubble.item.append(line);
}

function explain(status, detail, retryAfter) {
  if (status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} second${retryAfter === "1" ? "" : "s"}.` : " Try again later.";
    return { text: `Too many messages.${wait}`, retry: false };
  }
  if (status === 502 || status === 504) {
    return { text: `The model failed to answer (${detail}). Your message is saved.`, retry: true };
  }
  if (status === 503) return { text: "The server's database is unavailable. Try again in a moment.", retry: true };
  return { text: detail || `The request failed (HTTP ${status}).`, retry: false };
}

function* sseEvents(buffer) {
  // Yields [event, data, id] for every complete event in buffer.text and keeps the rest;
  // comments (keep-alives) and retry hints are skipped.
  let end;
  while ((end = buffer.text.indexOf("\n\n")) >= 0) {
    const raw = buffer.text.slice(0, end);
    buffer.text = buffer.text.slice(end + 2);
    let name = "message";
    let id = null;
    const data = [];
    for (const line of raw.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      else if (line.startsWith("id:")) id = line.slice(3).trim();
    }
    if (data.length) yield [name, JSON.parse(data.join("\n")), id];
  }
}

async function send(text, { again = false } = {}) {
  if (state.busy) return;
  state.busy = true;
  $("send").disabled = true;
  if (!again) addMessage("user", text);
  const bubble = addMessage("assistant", "");
  bubble.item.setAttribute("aria-busy", "true");
  const lines = new Map();
  let finished = false;
  try {
    const body = { message: text, timezone: ZONE };
    if (state.conversationId) body.conversation_id = state.conversationId;
    let response;
    try {
      response = await fetch("/api/chat", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
      });
    } catch {
      problem(bubble, "Connection lost: the server could not be reached. Check that it is running.", text);
      return;
    }
    if (!response.ok) {
      const error = await failure(response);
      if (error.status === 401) return;
      const { text: said, retry } = explain(error.status, error.message, error.retryAfter);
      problem(bubble, said, retry ? text : null);
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const buffer = { text: "" };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer.text += value;
        for (const [name, data] of sseEvents(buffer)) {
          finished = handle(name, data, bubble, lines, text) || finished;
        }
      }
    } catch {
      // The stream broke off: the server stopped or the network went away.
    }
    if (!finished) problem(bubble, "Connection lost before the answer was complete.", text);
  } finally {
    bubble.item.removeAttribute("aria-busy");
    state.busy = false;
    $("send").disabled = false;
    $("messages").scrollTop = $("messages").scrollHeight;
  }
}

// One streamed event; true once the turn has ended (with an answer or an error).
function handle(name, data, bubble, lines, text) {
  if (name === "conversation") {
    const fresh = data.conversation_id !== state.conversationId;
    state.conversationId = data.conversation_id;
    localStorage.setItem(conversationKey(), String(data.conversation_id));
    if (fresh) refreshConversations();
  } else if (name === "delta") {
    bubble.body.textContent += data.text;
    $("messages").scrollTop = $("messages").scrollHeight;
  } else if (name === "tool_call") {
    const line = toolLine({ name: data.name, arguments: data.arguments });
    lines.set(data.id, { line, arguments: data.arguments });
    bubble.tools.append(line);
  } else if (name === "tool_result") {
    const known = lines.get(data.id);
    const call = { name: data.name, arguments: known ? known.arguments : {}, result: data.result };
    if (known) known.line.update(call);
    else bubble.tools.append(toolLine(call));
    if (CHANGING_TOOLS.has(data.name)) refreshTasks();
  } else if (name === "done") {
    bubble.body.textContent = data.response;
    $("announce").textContent = data.response;
    refreshTasks();
    refreshConversations();
    return true;
  } else if (name === "error") {
    const { text: said, retry } = explain(data.status, data.detail, null);
    problem(bubble, said, retry ? text : null);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- task events

// The user's task events (GET /api/events), from any device or process: a reminder shows as
// a notice, a change refreshes the task list. A dropped stream resumes after the last event.
async function listenForEvents() {
  if (state.listening) state.listening.abort();
  const listening = new AbortController();
  state.listening = listening;
  let last = null;
  while (!listening.signal.aborted && state.token) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (last) extra["Last-Event-ID"] = last;
      const response = await fetch("/api/events", { headers: headers(extra), signal: listening.signal });
      if (response.status === 401) {
        await failure(response);
        return;
      }
      if (response.ok) {
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        const buffer = { text: "" };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer.text += value;
          for (const [name, data, id] of sseEvents(buffer)) {
            if (id) last = id;
            if (name === "reminder.due") notice(data);
            else if (name.startsWith("task.")) refreshTasks();
          }
        }
      }
    } catch {
      if (listening.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function notice(event) {
  const item = document.createElement("li");
  const text = document.createElement("span");
  const due = event.task.due ? ` (due ${formatDue(event.task.due)})` : "";
  text.textContent = `Reminder: ${event.task.title}${due}${event.late ? " — sent late" : ""}`;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "quiet";
  dismiss.textContent = "Dismiss";
  dismiss.addEventListener("click", () => item.remove());
  item.append(text, dismiss);
  $("notices").append(item);
}

// ---------------------------------------------------------------- tasks

// Dates read as the assistant's replies write them: "Tue 08 Dec 2026, 17:00 EST".
const dueParts = new Intl.DateTimeFormat("en-US", {
  weekday: "short", day: "2-digit", month: "short", year: "numeric",
  hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
});

function formatDue(iso) {
  const part = Object.fromEntries(dueParts.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${part.weekday} ${part.day} ${part.month} ${part.year}, ${part.hour}:${part.minute} ${part.timeZoneName}`;
}

async function refreshTasks() {
  let page;
  try {
    page = await api("/api/tasks?status=all&limit=100");
  } catch (error) {
    if (error.status !== 401) $("task-status").textContent = `Could not load tasks: ${error.message}`;
    return;
  }
  $("task-status").textContent = "";
  const tasks = [...page.data].sort((a, b) => Number(a.completed) - Number(b.completed));
  $("task-list").replaceChildren(...tasks.map(taskItem));
  if (!tasks.length) {
    const empty = document.createElement("li");
    empty.className = "hint";
    empty.textContent = "No tasks yet.";
    $("task-list").append(empty);
  }
}

function taskItem(task) {
  const item = document.createElement("li");
  item.className = task.completed ? "done" : "";
  item.dataset.taskId = String(task.id);
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = `task-${task.id}`;
  box.checked = task.completed;
  box.addEventListener("change", () => toggle(task, box));
  const label = document.createElement("label");
  label.htmlFor = box.id;
  label.textContent = task.title;
  const meta = document.createElement("span");
  meta.className = "meta";
  const parts = [];
  if (task.due) parts.push(`due ${formatDue(task.due)}`);
  if (task.priority && task.priority !== "none") parts.push(`${task.priority} priority`);
  if (task.tags.length) parts.push(task.tags.map((tag) => `#${tag}`).join(" "));
  meta.textContent = parts.join(" · ");
  if (task.priority === "high") meta.classList.add("priority-high");
  label.append(meta);
  item.append(box, label);
  return item;
}

async function toggle(task, box) {
  box.disabled = true;
  try {
    await api(`/api/tasks/${task.id}/${box.checked ? "complete" : "reopen"}`, { method: "POST" });
    $("task-status").textContent = "";
  } catch (error) {
    box.checked = !box.checked;
    if (error.status !== 401) $("task-status").textContent = `Could not change "${task.title}": ${error.message}`;
  }
  box.disabled = false;
  refreshTasks();
}

// ---------------------------------------------------------------- wiring

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("new-chat").addEventListener("click", () => {
    showConversation(null, []);
    refreshConversations();
    $("message").focus();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value.trim();
    if (!text || state.busy) return;
    $("message").value = "";
    send(text);
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  const token = tokenFromLink() || localStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else signOut("");
}

start();
