/**
 * The dashboard page: one WebSocket to the node (`/dashboard/live`), everything drawn from what
 * it pushes. Read-only until the operator's token unlocks the prompt box. No framework: each
 * panel is a function from the latest state to the DOM.
 *
 * @module
 */
import { formatNumber, lineChart } from "./charts.js";
import { checkReceipt, toHex } from "./receipt_check.js";
import { trainingPanel } from "./training_panel.js";

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
};
const short = (key) => (key ? String(key).slice(0, 10) + "…" : "?");

/**
 * Characters the page shows written out (`\x1b`, `\n`, `\u202e`) in text that peers chose: the
 * controls but tab (a newline too: one peer's text is one line, as in the log), the Unicode line
 * separators, the bidirectional marks, overrides and isolates (a U+202E in a peer's refusal
 * reversed the rest of its cell, review s76 F2), and the zero-width characters (which hide text),
 * but for the joiners inside a word ({@link joinsWord}). The set the node's log escapes
 * (`node/log_format.ts`).
 */
const HIDDEN =
  // deno-lint-ignore no-control-regex -- matching control characters is its purpose
  /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * A character a word is made of, ending the text before a joiner: a letter, a mark, a digit or a
 * symbol (an emoji). Alternatives, not one class: V8 matches no character outside the BMP with
 * `[\p{S}]$` (a bracketed class before `$`), so 👩 before a joiner did not count.
 */
const WORD_END = /(?:\p{L}|\p{M}|\p{N}|\p{S})$/u;
/** The same, starting the text after a joiner. */
const WORD_START = /^(?:\p{L}|\p{M}|\p{N}|\p{S})/u;

/**
 * Whether the character at `at` in `text` is a zero-width joiner (U+200D) or non-joiner (U+200C)
 * between two characters of a word: there they are part of ordinary writing (an emoji sequence
 * such as 👩‍💻, Persian می‌خواهم, Sinhala ශ්‍රී, Hindi) and reorder nothing, so they are left as
 * they are; written out they mangled such a model's name (review s77 vstr F5). Leading, trailing,
 * doubled or beside a space they only hide, and are written out.
 *
 * @param {string} text
 * @param {number} at
 * @returns {boolean}
 */
function joinsWord(text, at) {
  const char = text[at];
  if (char !== "\u200c" && char !== "\u200d") return false;
  // Two code units each side: a character outside the BMP is a surrogate pair.
  return WORD_END.test(text.slice(Math.max(0, at - 2), at)) &&
    WORD_START.test(text.slice(at + 1, at + 3));
}

/**
 * Most characters of a peer's text a table cell shows; the whole is in its `title`. A line's
 * worth: a configured peer's 1 KiB refusal made the page 11,509 px wide (review s76 F2).
 */
const SHOWN_PEER_CHARS = 160;

/**
 * `text` as the page shows a string that peers (or a node's answer about them) chose:
 * {@link HIDDEN} characters written out, and, given `max`, cut to `max` characters with "…".
 * Every peer-chosen string the page puts in a cell, a list or a title goes through here.
 *
 * @param {unknown} text
 * @param {number} [max]
 * @returns {string}
 */
function shown(text, max = Infinity) {
  const visible = String(text ?? "").replace(HIDDEN, (char, at, whole) => {
    if (joinsWord(whole, at)) return char;
    if (char === "\n") return "\\n";
    if (char === "\r") return "\\r";
    const code = char.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
  if (visible.length <= max) return visible;
  // Not between the halves of a surrogate pair: that would leave half a character.
  let end = max - 1;
  if (/[\ud800-\udbff]/.test(visible[end - 1] ?? "")) end--;
  return visible.slice(0, end) + "…";
}

/**
 * `value` as indented JSON for the page, each {@link HIDDEN} character inside its strings written
 * `\uXXXX` (JSON's own escape, so it stays the same JSON) but for the joiners inside a word:
 * a fraud proof holds peer-chosen strings (a receipt's model name), and a U+202E in one reversed
 * the rest of the dialog's line (review s77 vstr F4). `JSON.stringify` escapes the C0 controls
 * inside strings itself; the newlines left are its own, between lines.
 *
 * @param {unknown} value
 * @returns {string}
 */
function shownJson(value) {
  return JSON.stringify(value, null, 2).replace(
    HIDDEN,
    (char, at, whole) =>
      char === "\n" || joinsWord(whole, at)
        ? char
        : `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const bytes = (n) =>
  n >= 2 ** 30
    ? (n / 2 ** 30).toFixed(2) + " GiB"
    : n >= 2 ** 20
    ? (n / 2 ** 20).toFixed(1) + " MiB"
    : n >= 1024
    ? (n / 1024).toFixed(1) + " KiB"
    : n + " B";

const state = {
  /** @type {WebSocket | undefined} */
  socket: undefined,
  access: "none",
  /** @type {any} */
  snapshot: undefined,
  /**
   * Live jobs by id, the first submitted first: those the last snapshot listed, and those started
   * since. Their text grows token by token.
   */
  jobs: new Map(),
  /** Live jobs the last snapshot counted but did not list (`jobs.leftOut.live`), less those ended. */
  unlistedJobs: 0,
  /** The prompt box's job, while it runs. */
  prompt: undefined,
  node: undefined,
};

const ttftChart = lineChart($("ttft-chart"), {
  series: [{ name: "time to first token", color: "#5aa7f0" }],
  unit: " ms",
  keep: 60,
});
const rateChart = lineChart($("rate-chart"), {
  series: [{ name: "tokens/s", color: "#3fb68b" }],
  keep: 60,
});
const training = trainingPanel({
  panel: $("training-panel"),
  roundsChart: $("training-rounds-chart"),
  stepsChart: $("training-steps-chart"),
  summary: $("training-summary"),
  rounds: /** @type {HTMLElement} */ ($("training-rounds").querySelector("tbody")),
});
const ledgerChart = lineChart($("ledger-chart"), {
  series: [
    { name: "credit", color: "#3fb68b" },
    { name: "stake", color: "#5aa7f0" },
    { name: "locked", color: "#e0a43b" },
  ],
  keep: 1800,
});

/**
 * The page's first wait before reconnecting, and its longest: each failed try doubles the wait, so
 * a node that refuses sockets (429 `too_many_sockets`, which a page cannot read) or is down is not
 * asked every 2 s forever by every open tab; an open socket starts again from the first.
 */
const RECONNECT_FIRST_MS = 2_000;
const RECONNECT_MAX_MS = 60_000;
let reconnectMs = RECONNECT_FIRST_MS;

/**
 * The subprotocol the node answers with, and the prefix of the one that carries the operator
 * token (base64url, no padding): a page cannot set `Authorization` on a WebSocket, and a token in
 * the handshake skips the places of sockets still to send their `auth` (dashboard_handshake.ts).
 */
const DASHBOARD_PROTOCOL = "veriflow.dashboard";
const BEARER_PROTOCOL_PREFIX = "base64url.bearer.veriflow.";
/**
 * Whether the next socket carries the token in its handshake. The node refuses a stale token
 * there (401 `bad_token`), and a page sees only a failed handshake, as for a full node or one that
 * is down: after one such failure the page connects without it and sends the token as `auth`,
 * whose `bad_token` answer it can read (and then shows the login), so it never loops on a stale
 * token. An open socket puts the token back into the next handshake.
 */
let tokenInHandshake = true;

/** @param {string} text */
function base64Url(text) {
  const binary = String.fromCharCode(...new TextEncoder().encode(text));
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const token = sessionStorage.getItem("veriflow-operator-token");
  const url = `${scheme}://${location.host}/dashboard/live`;
  const inHandshake = Boolean(token) && tokenInHandshake;
  const socket = inHandshake
    ? new WebSocket(url, [DASHBOARD_PROTOCOL, BEARER_PROTOCOL_PREFIX + base64Url(token)])
    : new WebSocket(url);
  state.socket = socket;
  let opened = false;
  socket.onopen = () => {
    opened = true;
    tokenInHandshake = true;
    reconnectMs = RECONNECT_FIRST_MS;
    setBadge("connection", "live", "ok");
    // The handshake's token was accepted, or the node would have refused it: else, send it now.
    if (token && !inHandshake) socket.send(JSON.stringify({ type: "auth", token }));
  };
  socket.onclose = () => {
    if (!opened && inHandshake) tokenInHandshake = false;
    setBadge("connection", `offline — reconnecting in ${reconnectMs / 1000} s`, "bad");
    // The node cancels a page's prompt when its socket closes, and the next socket has to be
    // unlocked again: nothing runs until its hello says so.
    if (state.prompt) {
      endPrompt();
      $("receipt-status").textContent = "the connection dropped: the node cancelled the job";
      $("receipt-status").className = "bad";
    }
    setAccess("none");
    setTimeout(connect, reconnectMs);
    reconnectMs = Math.min(reconnectMs * 2, RECONNECT_MAX_MS);
  };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
}

function setBadge(id, text, kind) {
  const badge = $(id);
  badge.textContent = text;
  badge.className = `badge ${kind ?? ""}`;
}

/**
 * The `error`s that refuse the page's prompt. Any other (a fraud proof no longer kept, a read
 * refused) is about something else: the prompt runs on at the node, and its receipt is still
 * to be checked against the job the page built.
 */
const PROMPT_REFUSALS = new Set(["operator_token_required", "invalid_job", "busy"]);

/** @param {any} message */
function handle(message) {
  switch (message.type) {
    case "hello":
      state.node = message.node;
      $("node-key").textContent = `node ${short(message.node.key)} · v${
        shown(message.node.version, SHOWN_PEER_CHARS)
      }`;
      $("node-key").title = message.node.key;
      setAccess(message.access);
      break;
    case "snapshot":
      state.snapshot = message;
      render(message);
      break;
    case "lifecycle":
      onLifecycle(message.event);
      break;
    case "job":
      onJob(message.event);
      break;
    case "activity":
      prependActivity(message.item);
      break;
    case "prompt_started":
      $("prompt-hint").textContent = `job ${short(message.jobId)} on ${shown(message.model)}`;
      break;
    case "prompt_token":
      // Appended as a text node of its own: `textContent +=` copied and laid out all the output
      // so far at every token, quadratic in a long job (4,096 tokens of a worker's 1,024
      // characters). The receipt is checked against `textContent`, all of them joined.
      $("prompt-output").append(message.text);
      // Counted apart from the text: a token may show none, and the receipt bills each one.
      if (state.prompt) state.prompt.tokens++;
      break;
    case "prompt_done":
      void onPromptDone(message.summary);
      break;
    case "prompt_error":
      endPrompt();
      $("receipt-status").textContent = `job refused: ${shown(message.code)}: ${
        shown(message.message)
      }`;
      $("receipt-status").className = "bad";
      break;
    case "fraud_proof":
      $("proof-id").textContent = short(message.id);
      $("proof-body").textContent = shownJson(message.proof);
      /** @type {HTMLDialogElement} */ ($("proof-dialog")).showModal();
      break;
    case "error":
      if (message.code === "bad_token") {
        sessionStorage.removeItem("veriflow-operator-token");
        $("prompt-hint").textContent = "that token is not this node's operator token";
      } else if (state.prompt && PROMPT_REFUSALS.has(message.code)) {
        endPrompt();
        $("receipt-status").textContent = `${shown(message.code)}: ${shown(message.message)}`;
        $("receipt-status").className = "bad";
      } else $("prompt-hint").textContent = shown(message.message);
      break;
  }
}

function setAccess(access) {
  state.access = access;
  const operator = access === "operator";
  setBadge(
    "access",
    operator ? "operator" : access === "read" ? "read-only" : "locked",
    operator ? "ok" : "warn",
  );
  /** @type {HTMLButtonElement} */ ($("run")).disabled = !operator;
  $("auth-form").hidden = operator;
  if (operator) $("prompt-hint").textContent = "runs on this node; the receipt is checked here";
}

// ---- rendering ---------------------------------------------------------------------------

function render(s) {
  renderTree(s.tree);
  renderPeers(s.peers ?? [], s);
  renderUnreachable(s.staticPeers ?? []);
  renderJobs(s.jobs);
  const answering = (part) => !(s.unavailable ?? []).includes(part);
  renderValidator(s.validator, answering("validator"));
  renderLedger(s.ledger ?? [], answering("validator"));
  renderStorage(s.storage, answering("storage"));
  training.render(s.training);
  // The first snapshot of each socket carries the node's feed (the ticks do not): it replaces
  // what the page has, so a socket that came back shows what happened while it was down, and
  // no item twice (a feed of audits only left #activity empty: it was prepended again).
  if (s.activity !== undefined) {
    $("activity").replaceChildren();
    $("audits").replaceChildren();
    for (const item of [...s.activity].reverse()) prependActivity(item);
  }
}

function renderTree(tree) {
  const build = (node) => {
    const label = node.strategy ?? node.restart ?? "";
    const row = el(
      "span",
      { class: "tree-node" },
      el("span", { class: `dot ${node.status}`, title: node.status }),
      el("span", { class: "mono" }, node.name),
      el("span", { class: "hint" }, `${node.kind}${label ? " " + label : ""}`),
    );
    if (node.restarts > 0) {
      row.append(
        el(
          "span",
          { class: "restarts" },
          `↻ ${node.restarts} restart${node.restarts === 1 ? "" : "s"}`,
        ),
      );
    }
    if (node.mailbox) {
      row.append(
        el("span", { class: "hint" }, `mailbox ${node.mailbox.size}/${node.mailbox.capacity}`),
      );
    }
    const item = el("li", {
      "data-name": node.name,
      "data-status": node.status,
      "data-restarts": String(node.restarts),
    }, row);
    const children = (node.children ?? []).filter((c) => !/\/job-|\/[0-9a-f]{12,}/.test(c.name));
    if (children.length > 0) item.append(el("ul", {}, ...children.map(build)));
    return item;
  };
  $("tree").replaceChildren(build(tree));
}

function onLifecycle(event) {
  const log = $("lifecycle");
  log.prepend(
    el(
      "li",
      { class: event.type },
      `${new Date(event.time).toLocaleTimeString()} ${shown(event.detail)}`,
    ),
  );
  while (log.childElementCount > 50) log.lastElementChild?.remove();
  const row = document.querySelector(
    `#tree li[data-name="${CSS.escape(event.name)}"] > .tree-node`,
  );
  row?.classList.remove("flash");
  void (/** @type {HTMLElement} */ (row))?.offsetWidth;
  row?.classList.add("flash");
}

const ROLE_COLORS = {
  inference: "#5aa7f0",
  validator: "#b48ef0",
  storage: "#3fc1c9",
  router: "#8595a6",
};

/**
 * One entry per peer key, its oldest connection's facts and how many connections it has: the
 * snapshot lists connections, and a peer that both dialled and was dialled was drawn as two
 * circles and two rows (review s78 F4).
 */
function byKey(connections) {
  const peers = new Map();
  for (const connection of connections) {
    const seen = peers.get(connection.key);
    if (seen) seen.connections++;
    else peers.set(connection.key, { ...connection, connections: 1 });
  }
  return [...peers.values()];
}

function renderPeers(connections, s) {
  const peers = byKey(connections);
  const svg = $("network");
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const cx = 200, cy = 130, radius = 95;
  const nodes = [];
  peers.forEach((peer, i) => {
    const angle = (i / Math.max(1, peers.length)) * 2 * Math.PI - Math.PI / 2;
    const x = cx + radius * Math.cos(angle), y = cy + radius * Math.sin(angle);
    const load = peer.load ? peer.load.running + peer.load.queued : 0;
    const role = peer.roles.find((r) => r in ROLE_COLORS) ?? "router";
    const group = make("g", { "data-peer": peer.key, class: "peer" });
    group.append(
      make("line", {
        x1: cx,
        y1: cy,
        x2: x,
        y2: y,
        stroke: peer.outbound ? "#5aa7f0" : "#3a4756",
        "stroke-width": 1.5,
      }),
      make("circle", {
        cx: x,
        cy: y,
        r: 9 + Math.min(10, load * 2),
        fill: ROLE_COLORS[role],
        stroke: peer.convicted ? "#e5534b" : "#0f1419",
        "stroke-width": peer.convicted ? 4 : 2,
      }),
      make(
        "text",
        { x, y: y + 26, "text-anchor": "middle", fill: "#d7dee6", "font-size": 10 },
        short(peer.key),
      ),
      make(
        "text",
        { x, y: y + 37, "text-anchor": "middle", fill: "#8595a6", "font-size": 9 },
        shown(peer.roles.join(","), SHOWN_PEER_CHARS) || "…",
      ),
    );
    const title = make(
      "title",
      {},
      `${peer.key}\n${shown(peer.address)}\nroles ${
        shown(peer.roles.join(", "))
      }\nmodels ${peer.models.length}\nload ${load}\nconnections ${peer.connections}${
        peer.convicted ? "\nCONVICTED" : ""
      }`,
    );
    group.append(title);
    nodes.push(group);
  });
  const self = make("g", { class: "self" });
  const busy = s.jobs?.stats ? s.jobs.stats.activeJobs + s.jobs.stats.queuedJobs : 0;
  self.append(
    make("circle", {
      cx,
      cy,
      r: 14 + Math.min(10, busy * 2),
      fill: "#e0a43b",
      stroke: "#0f1419",
      "stroke-width": 2,
    }),
    make(
      "text",
      { x: cx, y: cy + 30, "text-anchor": "middle", fill: "#d7dee6", "font-size": 11 },
      "this node",
    ),
  );
  if (peers.length === 0) {
    nodes.push(
      make(
        "text",
        { x: cx, y: 20, "text-anchor": "middle", fill: "#8595a6", "font-size": 11 },
        (s.unavailable ?? []).includes("peers")
          ? notAnswering("network actor")
          : "no peers connected (--peer HOST:PORT, --swarm)",
      ),
    );
  }
  svg.replaceChildren(...nodes, self);
  $("peers").querySelector("tbody").replaceChildren(...peers.map((peer) => {
    const load = peer.load ? `${peer.load.running} running, ${peer.load.queued} queued` : "–";
    return el(
      "tr",
      { "data-peer": peer.key },
      el("td", { class: "mono", title: shown(`${peer.key} ${peer.address}`) }, short(peer.key)),
      el("td", {}, shown(peer.roles.join(", ")) || "–"),
      el("td", {}, String(peer.models.length)),
      el("td", {}, load),
      el(
        "td",
        { class: peer.convicted ? "bad" : "" },
        peer.convicted ? "convicted (slashed)" : "good",
      ),
    );
  }));
}

/**
 * Configured peers (--peer) whose dials fail, as rows under the connected ones: the address, the
 * last error and since when (review s74 F3: such a peer showed only in the node's log).
 */
function renderUnreachable(staticPeers) {
  const down = staticPeers.filter((p) => !p.up && p.failures > 0);
  const body = $("peers").querySelector("tbody");
  for (const peer of down) {
    body.append(el(
      "tr",
      { "data-static-peer": peer.address, class: "unreachable" },
      el("td", { class: "mono" }, shown(peer.address, SHOWN_PEER_CHARS)),
      el("td", {}, "configured"),
      el("td", {}, "–"),
      el("td", {}, "–"),
      // The last error carries the peer's own words (its refusal's reason, up to 1 KiB): a
      // line's worth in the cell, the whole in its title.
      el(
        "td",
        { class: "bad", title: shown(peer.lastError) },
        `unreachable since ${new Date(peer.since).toLocaleTimeString()} ` +
          `(${peer.failures} dials failed): ${
            shown(peer.lastError ?? "no answer", SHOWN_PEER_CHARS)
          }`,
      ),
    ));
  }
}

function renderJobs(jobs) {
  if (!jobs) return;
  // The snapshot says which jobs are live: one whose `job_ended` this page missed (its socket
  // dropped, or updates were dropped while it fell behind) is over, not live for good. It lists
  // the first ones (those drawn) and counts the others: the page follows those it lists, each
  // with the text it has of it (kept from its tokens), in the node's order.
  const listed = new Map();
  for (const job of jobs.live) listed.set(job.jobId, state.jobs.get(job.jobId) ?? { ...job });
  state.jobs = listed;
  state.unlistedJobs = jobs.leftOut?.live ?? 0;
  const stats = jobs.stats;
  $("jobs-summary").textContent = stats
    ? `${stats.activeJobs} running · ${stats.queuedJobs} queued · ${stats.jobsFinished} done · ` +
      `${stats.jobsFailed} failed · ${formatNumber(stats.tokensGenerated)} tokens`
    : "";
  drawJobs(jobs.recent);
}

/**
 * Live jobs the panel draws at most (the rest are counted): a node keeps up to its queue limit
 * (64 by default) plus its running jobs live, and a row per job, each with up to
 * {@link KEPT_JOB_TEXT} characters, made the panel as long as the queue.
 */
const SHOWN_LIVE_JOBS = 20;
/** Finished jobs drawn under the live ones. */
const SHOWN_RECENT_JOBS = 5;
/** The drawn rows by job id, kept from draw to draw: a job's token updates its row alone. */
const jobRows = new Map();

/** A job's meta line. */
const jobMeta = (job) =>
  `${short(job.jobId)} · ${
    shown(job.model, SHOWN_PEER_CHARS)
  } · ${job.state} · ${job.tokens} tokens` +
  (job.ttftMs !== undefined ? ` · TTFT ${Math.round(job.ttftMs)} ms` : "") +
  (job.tokensPerS ? ` · ${job.tokensPerS.toFixed(1)} tok/s` : "");

/** `job`'s row, made once and then updated in place (only what changed is written). */
function jobRow(job) {
  let row = jobRows.get(job.jobId);
  if (row === undefined) {
    const meta = el("div", { class: "meta" });
    const text = el("div", { class: "text" });
    row = { node: el("div", { class: "job", "data-job": job.jobId }, meta, text), meta, text };
    jobRows.set(job.jobId, row);
  }
  row.node.dataset.state = job.state;
  const meta = jobMeta(job);
  if (row.meta.textContent !== meta) row.meta.textContent = meta;
  if (row.text.textContent !== job.text) row.text.textContent = job.text;
  return row.node;
}

/**
 * The jobs panel: the first {@link SHOWN_LIVE_JOBS} live jobs, a count of the others, then the
 * latest finished ones. Rows are reused by job id, so a redraw moves rows rather than rebuilding
 * every job's text.
 */
function drawJobs(recent = state.snapshot?.jobs?.recent ?? []) {
  const live = [...state.jobs.values()];
  const shown = [
    ...live.slice(0, SHOWN_LIVE_JOBS),
    ...recent.filter((j) => !state.jobs.has(j.jobId)).slice(0, SHOWN_RECENT_JOBS),
  ];
  const ids = new Set(shown.map((job) => job.jobId));
  for (const jobId of jobRows.keys()) if (!ids.has(jobId)) jobRows.delete(jobId);
  const more = live.length + state.unlistedJobs - SHOWN_LIVE_JOBS;
  const rows = shown.map(jobRow);
  if (more > 0) {
    rows.splice(SHOWN_LIVE_JOBS, 0, el("div", { class: "hint" }, `${more} more live jobs`));
  }
  $("jobs").replaceChildren(...rows);
}

/**
 * Output kept per live job: what the node keeps (`MAX_KEPT_TEXT` in `server/job_monitor.ts`), so
 * a long job of long tokens (a worker peer's may each be 1,024 characters) does not grow the page
 * and its redraw at every token.
 */
const KEPT_JOB_TEXT = 4_096;

function onJob(event) {
  if (event.type === "job_started") {
    // Behind jobs the snapshot only counted: counted too, listed by a later snapshot if drawn.
    if (state.unlistedJobs > 0) state.unlistedJobs++;
    else state.jobs.set(event.job.jobId, { ...event.job });
  } else if (event.type === "job_token") {
    const job = state.jobs.get(event.jobId);
    if (!job) return;
    if (job.tokens === 0) job.state = "streaming";
    job.tokens++;
    job.text = (job.text + event.text).slice(-KEPT_JOB_TEXT);
    job.tokensPerS = event.tokensPerS;
    // Its own row only, if drawn: redrawing the panel at every token of every live job cost
    // the page n² rows for n jobs streaming.
    if (jobRows.has(job.jobId)) jobRow(job);
    return;
  } else if (event.type === "job_ended") {
    // One the page does not follow was among those the snapshot counted.
    if (!state.jobs.delete(event.job.jobId)) {
      state.unlistedJobs = Math.max(0, state.unlistedJobs - 1);
    }
    if (event.job.ttftMs !== undefined) ttftChart.push([event.job.ttftMs]);
    if (event.job.tokensPerS) rateChart.push([event.job.tokensPerS]);
    const recent = state.snapshot?.jobs?.recent;
    if (recent) recent.unshift(event.job);
  }
  drawJobs();
}

/** The line of a part the node has but that did not answer this snapshot. */
const notAnswering = (actor) =>
  `the ${actor} is not answering (busy, wedged or restarting: see the supervision tree)`;

function renderValidator(validator, answering) {
  if (!validator) {
    $("validator-summary").textContent = answering
      ? "this node keeps no ledger (--no-validator)"
      : notAnswering("validator");
    return;
  }
  const t = validator.stats;
  // Recorded receipts, one per job, as the node counts them for every view (the snapshot's
  // `receipts`, `actors/recorded_receipts.ts`): copies and refusals are shown apart, never as jobs.
  const r = validator.receipts;
  const fault = t.ledgerWriteFault;
  $("validator-summary").textContent =
    `${r.recorded} receipts (${r.fromPeers} from peers, ${r.own} own, ${r.copies} ` +
    `${r.copies === 1 ? "copy" : "copies"}) · ` + (r.refused > 0 ? `refused ${r.refused} · ` : "") +
    `${t.challenged} challenged · ` +
    `verdicts ${t.verdicts.valid} valid, ${t.verdicts.fraud} fraud, ${t.verdicts.invalid} invalid, ` +
    `${t.verdicts.inconclusive} inconclusive · ${t.peerVerdicts} from peers · ${t.slashes} slashes · ` +
    `${t.openChallenges} open` +
    // One line while the ledger cannot write, as the heartbeat says it (`/healthz` has the rest);
    // not once a reopen from disk succeeded (`ledgerWritesFailing`, actors/validator_messages.ts).
    (fault && fault.reopenedAt === undefined
      ? ` · ledger writes failing (${fault.cause}, ${fault.failures} failed): see /healthz`
      : "");
}

function prependActivity(item) {
  const line = el(
    "li",
    { class: item.outcome, "data-kind": item.kind },
    `${new Date(item.time).toLocaleTimeString()} ${shown(item.kind)} ${
      shown(short(item.subject))
    } → ${shown(item.outcome)} · ` +
      `${shown(short(item.target))} · ${shown(item.detail, SHOWN_PEER_CHARS)} `,
  );
  if (item.fraudProof) {
    const button = el("button", { type: "button" }, "fraud proof");
    button.onclick = () =>
      state.socket?.send(JSON.stringify({ type: "fraud_proof", id: item.fraudProof }));
    line.append(button);
  }
  const list = item.kind === "audit" ? $("audits") : $("activity");
  list.prepend(line);
  while (list.childElementCount > 100) list.lastElementChild?.remove();
}

function renderLedger(history, answering) {
  ledgerChart.set([
    history.map((p) => p.balance),
    history.map((p) => p.stake),
    history.map((p) => p.locked),
  ]);
  const last = history[history.length - 1];
  $("ledger-summary").textContent = last
    ? `credit ${formatNumber(last.balance)} · stake ${formatNumber(last.stake)} (locked ${
      formatNumber(last.locked)
    })` + (answering ? "" : ` — last known, at ${new Date(last.time).toLocaleTimeString()}`)
    : "no ledger on this node";
}

function renderStorage(storage, answering) {
  if (!storage) {
    $("storage-summary").textContent = answering
      ? "this node stores nothing (--no-storage)"
      : notAnswering("storage actor");
    return;
  }
  const c = storage.capacity;
  const share = c.quotaBytes ? Math.min(1, c.usedBytes / c.quotaBytes) : 0;
  $("storage-bar").style.width = `${(share * 100).toFixed(1)}%`;
  $("storage-summary").textContent =
    `${bytes(c.usedBytes)} used of ${
      c.quotaBytes ? bytes(c.quotaBytes) : "no quota"
    } · ${storage.files} files ` +
    `(${storage.chunks} chunks) · ${c.replicaCount} chunks held for peers · ` +
    (storage.storagePeers > 0
      ? `replicated over ${storage.storagePeers} storage peers (${bytes(storage.peerBytes)} there)`
      : "no storage peers: files are held here only");
}

// ---- operator actions ----------------------------------------------------------------------

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = /** @type {HTMLInputElement} */ ($("token")).value.trim();
  if (!token) return;
  sessionStorage.setItem("veriflow-operator-token", token);
  state.socket?.send(JSON.stringify({ type: "auth", token }));
});

$("prompt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.access !== "operator" || state.prompt) return;
  const model = (state.snapshot?.models ?? []).find((m) => m.kind === "text");
  if (!model) {
    $("receipt-status").textContent = "this node serves no text model";
    return;
  }
  const maxTokens = Math.max(
    1,
    Number(/** @type {HTMLInputElement} */ ($("max-tokens")).value) || 32,
  );
  const job = {
    kind: "text",
    model: model.cid,
    prompt: /** @type {HTMLTextAreaElement} */ ($("prompt")).value,
    params: { maxTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: toHex(crypto.getRandomValues(new Uint8Array(16))),
  };
  state.prompt = { job, output: "", tokens: 0 };
  $("prompt-output").textContent = "";
  $("receipt-status").textContent = "streaming…";
  $("receipt-status").className = "";
  /** @type {HTMLButtonElement} */ ($("run")).disabled = true;
  /** @type {HTMLButtonElement} */ ($("cancel")).disabled = false;
  state.socket?.send(JSON.stringify({ type: "prompt", job }));
});

$("cancel").addEventListener("click", () => state.socket?.send(JSON.stringify({ type: "cancel" })));

function endPrompt() {
  state.prompt = undefined;
  /** @type {HTMLButtonElement} */ ($("run")).disabled = state.access !== "operator";
  /** @type {HTMLButtonElement} */ ($("cancel")).disabled = true;
}

async function onPromptDone(summary) {
  const prompt = state.prompt;
  endPrompt();
  const status = $("receipt-status");
  if (prompt === undefined) {
    // No job of this page's to check it against: whatever it signs, it is not the page's.
    status.textContent = "a receipt came for no prompt of this page: not checked";
    status.className = "bad";
    status.dataset.verified = "false";
    return;
  }
  if (!summary.receipt) {
    status.textContent = `ended (${summary.finishReason}) without a receipt` +
      (summary.error ? `: ${shown(summary.error.message)}` : "");
    status.className = "bad";
    return;
  }
  const output = $("prompt-output").textContent ?? "";
  const result = await checkReceipt(summary.receipt, {
    job: prompt.job,
    output,
    tokens: prompt.tokens,
  });
  status.className = result.ok ? "ok" : "bad";
  status.dataset.verified = String(result.ok);
  // "Verified" says what was checked: signed by the key shown, for this job, text and tokens; the
  // page knows nothing of who holds that key (`receipt_check.js`).
  status.textContent = result.ok
    ? `receipt verified in this page ✓ — ${result.checks.map((c) => c.name).join(", ")} · ` +
      `signed by worker key ${short(summary.receipt.worker)} · ` +
      `${summary.usage.completionTokens} tokens, TTFT ${Math.round(summary.timings.ttftMs)} ms`
    // A count that differs is said as it is: a token may show no text, so the text can match.
    : result.detail !== undefined
    ? `receipt NOT verified ✗ — ${result.detail}`
    : `receipt NOT verified ✗ — ${result.reason} failed`;
}

connect();
