// The operator page's requests: the JSON API with the bearer token (asked for once, kept for
// the tab), its errors as one line, and the notice line that reports them.

const TOKEN_KEY = "durable-agent-token";

export const $ = (id) => document.getElementById(id);

class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

let asking = null; // one question for every request that met a 401 meanwhile

function askForToken() {
  if (asking) return asking;
  const form = $("token-form");
  form.hidden = false;
  $("token-input").focus();
  asking = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
      $("token-input").value = "";
      form.hidden = true;
      asking = null;
      notify("");
      resolve();
    };
  });
  return asking;
}

export async function api(path, { method = "GET", body } = {}) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      notify("This server needs a token.", true);
      await askForToken();
      continue;
    }
    const text = await response.text();
    const data = text ? parseJson(text) : null;
    if (!response.ok) throw new HttpError(response.status, detailOf(data) || text);
    return data;
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function detailOf(data) {
  // The API answers errors as {"error": "<one line>"}.
  if (data && typeof data === "object" && typeof data.error === "string") return data.error;
  return typeof data === "string" ? data : "";
}

export function notify(text, isError = false) {
  const notice = $("notice");
  notice.textContent = text;
  notice.classList.toggle("error", isError);
}

export function runPath(id, rest = "") {
  return `runs/${encodeURIComponent(id)}${rest}`;
}
