/**
 * The live dashboard: static files at `/` (`server/dashboard/`, plain ES modules, no build
 * step), a WebSocket at `/dashboard/live` that pushes what the node is doing as it happens, and
 * `GET /dashboard/state`, the same snapshot once as JSON (what `cli.ts status` reads).
 *
 * Messages, server to page (JSON, one per WebSocket message):
 *
 * | type | when | body |
 * | --- | --- | --- |
 * | `hello` | on connect | `node` (key, version), `access` (`read` or `operator`) |
 * | `snapshot` | on connect, then every `tickMs` | tree, peers, the configured peers' dial states (`staticPeers`), jobs (those the page draws, the others counted), validator, ledger history, storage, training, models, the parts that did not answer (`unavailable`); the first also the recent `activity` |
 * | `lifecycle` | an actor starts, crashes, restarts, stops | the event |
 * | `job` | a job starts, streams a token, ends | a `JobEvent` (`job_monitor.ts`) |
 * | `activity` | a receipt, challenge, verdict, audit or fraud proof | an `ActivityItem` |
 * | `prompt_token`, `prompt_done`, `prompt_error` | the page's own job | its tokens, summary |
 * | `fraud_proof` | asked for (within the client's allowance) | the proof as JSON: whole to the operator, from an allow-list to a reader job text is blanked for ({@link withoutJobText}) |
 * | `error` | a refused request, a message that is no JSON object or has no string `type` (`bad_message`) | `code`, `message`, `retryAfterS` when over the client's allowance |
 *
 * Page to server: `{type:"auth", token}` (the operator token, or an API key for reading from
 * another machine), `{type:"prompt", job}` (a complete text job: the page chose its nonce, so it
 * can check the receipt against it), `{type:"cancel"}`, `{type:"fraud_proof", id}`. What throws
 * while one socket's message is handled closes that socket (1011), never the node.
 *
 * Access: reading needs what `/v1/*` needs (this machine, or an API key, or
 * `allowUnauthenticatedRemote`); a page of another origin than the node's own is never this
 * machine, whatever `http.allowedOrigins` says (`fromThisMachine`): an allowed origin only lets
 * its pages ask. Anything that changes state — running a job — needs the
 * operator token (`<dataDir>/operator.token`). The socket refuses pages from other origins
 * than the node's own and `http.allowedOrigins`. The node's own page is one it served at an
 * address (`127.0.0.1`, `[::1]`, a LAN address) or at `localhost`; a page it served under any
 * other name needs that origin in `http.allowedOrigins`, as on `/v1`, since a DNS-rebinding page
 * names its own domain in both `Host` and `Origin`.
 *
 * Each client (the operator token, an API key, this machine, each address reading without a key)
 * has its own allowance of sockets open, sockets opened a minute and state reads a minute
 * ({@link DashboardLimits}; `http.dashboard*`): over it, a 429 with `Retry-After`, or on a socket
 * an `error` and close 1013. A socket that must send its `auth` and has not within
 * {@link DASHBOARD_AUTH_TIMEOUT_MS} is closed (1008). Since one client may connect from many
 * addresses, the node also caps every address's anonymous sockets together (past it, a socket
 * must send a key to read) and its sockets waiting for their `auth` (per address: 429; in all:
 * the one that waited longest is pushed out, and counts on until it has closed; with as many pushed
 * out and not closed, 429). Deno reads a whole message before the node's size check, and a
 * fragmented one has no size limit (64 MiB is Deno's limit per frame): these counts, held until
 * each socket's `onclose`, bound how many sockets there are (`EDGE_DEFAULTS`), the drop after a
 * close's grace (`websocket_drop.ts`) how long a closed one lasts, and the node's memory guard
 * (`websocket_memory_guard.ts`, sockets still to send their `auth` dropped first) what they hold in
 * all. Each refusal, a wrong token included, is counted in
 * the edge's `veriflow_http_refused_total` as `/v1`'s are.
 *
 * @module
 */
import { bearerToken, grantOf } from "./credentials.ts";
import { Hono } from "hono";
import type { InferencePort, InferenceStats } from "../inference/inference_port.ts";
import { textJobSchema } from "../protocols/job.ts";
import type { ApiKeys } from "./api_keys.ts";
import { type EdgeEnv, fromThisMachine, isOwnOrigin } from "./client_access.ts";
import type { JobMonitor } from "./job_monitor.ts";
import { type JsonValue, toJsonValue } from "./json_value.ts";
import { originPolicy } from "./origin_policy.ts";
import { EdgeError, errorResponse, httpStatusOf } from "./http_errors.ts";
import { KeyLimits } from "./key_limits.ts";
import { type AuthPendingPlace, AuthPendingSockets, OpenSockets } from "./dashboard_socket_caps.ts";
import { type DashboardHandshake, readDashboardHandshake } from "./dashboard_handshake.ts";
import { clientAddress } from "./client_address.ts";
import { NO_TRUSTED_PROXIES, type TrustedProxies } from "./trusted_proxies.ts";
import { EDGE_DEFAULTS } from "./edge_config.ts";
import type { EdgeStats } from "./edge_stats.ts";
import type { DrainTimers } from "./serve.ts";
import { SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { closeThenDrop } from "./websocket_drop.ts";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "./json_depth.ts";
import { type GuardedSocketGroup, WebSocketMemoryGuard } from "./websocket_memory_guard.ts";

/** An actor lifecycle event as the page shows it. */
export interface LifecycleItem {
  /** `started`, `crashed`, `restarted`, `stopped`, `escalated`, `fatal`. */
  type: string;
  /** The actor's name. */
  name: string;
  /** Unix ms. */
  time: number;
  /** The reason or restart count, in words. */
  detail: string;
}

/** The validator's activity feed (see `node/node_activity.ts`). */
export interface ActivitySource {
  /** Kept items, newest first. */
  recent(): unknown[];
  /** Hear each new item. */
  subscribe(listener: (item: unknown) => void): () => void;
  /** A kept fraud proof by id. */
  fraudProof(id: string): JsonValue | undefined;
}

/** What the dashboard reads; the node wires each to its actors (`node/dashboard_sources.ts`). */
export interface DashboardSources {
  /** This node. */
  node: { key: string; version: string };
  /** The supervision tree now (restarts per node included). */
  tree(): unknown;
  /** Hear actor lifecycle events. */
  onLifecycle(listener: (item: LifecycleItem) => void): () => void;
  /** The peer table (`PeerInfo[]`); undefined without a network. */
  peers(): Promise<unknown[] | undefined>;
  /**
   * The configured peers' dial states (`StaticPeerState[]`: address, up, since, failures,
   * lastError), so the peers panel shows one that cannot be reached (review s74 F3).
   */
  staticPeers?(): Promise<unknown[] | undefined>;
  /**
   * The validator's counters, this node's account and its receipts as every view counts them
   * (`actors/recorded_receipts.ts`: recorded, copies and refused apart); undefined without a
   * validator.
   */
  validator(): Promise<
    {
      stats: unknown;
      account: { balance: number; stake: number; locked: number };
      receipts?: unknown;
    } | undefined
  >;
  /** Storage usage, quota, files and storage peers; undefined without storage. */
  storage(): Promise<unknown | undefined>;
  /** The validator's feed; absent without a validator. */
  activity?: ActivitySource;
  /** Decentralized training on this node; absent or undefined when it takes no part. */
  training?(): Promise<TrainingView | undefined>;
}

/** One finished training round as the page shows it. */
export interface TrainingRoundView {
  /** Round number. */
  round: number;
  /** CID of the model the round produced. */
  model: string;
  /** Held-out bits per byte of that model, when the coordinator evaluated it. */
  bitsPerByte?: number;
  /** Trainers whose deltas went in. */
  accepted: number;
  /**
   * A few of the trainers left out, and why (a failed challenge, no stake for a seat): only in
   * the rows the page lists (the latest 20), empty in the rounds it only charts.
   */
  excluded: { key: string; reason: string }[];
  /** Every trainer left out, counted by the kind of its reason (absent: none). */
  excludedCounts?: { reason: string; count: number }[];
}

/** Decentralized training as the page shows it (built in `node/dashboard_sources.ts`). */
export interface TrainingView {
  /** The rounds this node coordinates. */
  coordinator?: {
    /** The next round's number. */
    round: number;
    /** The current model's CID. */
    model: string;
    /** Held-out bits per byte of the first start model. */
    initialBitsPerByte?: number;
    /** Joined trainers a round can ask (not convicted, with the stake to back a round). */
    trainers: number;
    /**
     * Trainers convicted of lazy work (hex keys), never asked again: by the coordinator, and
     * joined ones this node's ledger convicted.
     */
    convicted: string[];
    /** Joined trainers without the free stake to back a round's receipt, not asked (absent: none). */
    unbacked?: number;
    /**
     * Which text its rounds are evaluated on: the public Brown split (every trainer can read it)
     * or a private file, with its size (never path or content). Absent: not said.
     */
    heldOut?: { kind: "public_brown_split" | "private_file"; bytes: number; documents?: number };
    /** The latest finished rounds (200 in `node/dashboard_sources.ts`), oldest first. */
    rounds: TrainingRoundView[];
  };
  /** This node's own training work. */
  trainer?: {
    /** Rounds trained. */
    rounds: number;
    /** Challenges answered (step openings). */
    challenges: number;
    /** Coordinators joined. */
    coordinators: number;
    /** The local run in progress. */
    current?: { round: number; step: number; steps: number };
    /** Training loss (bits per byte) of each step of the latest local run. */
    losses: number[];
  };
}

/** Options of {@link dashboardRoutes}. */
export interface DashboardOptions {
  /** What the page shows. */
  sources: DashboardSources;
  /** The monitored port: jobs shown live, and the prompt box's jobs. */
  inference: InferencePort;
  /** The monitor the port reports to. */
  jobs: JobMonitor;
  /**
   * The token that allows state changes (running a job); absent, nobody runs a job from the
   * page (a node without the page, {@link DashboardOptions.page}, has none).
   */
  operatorToken?: string;
  /**
   * Serve the page: its files at `/`, the socket, and the state to whoever may read it (default
   * true). False (`--no-dashboard`): only `GET /dashboard/state`, and to this machine only, for
   * `cli.ts status` on the node's machine (review s78 dash, F7). A key holder or a reader
   * elsewhere gets 404, as from a node without the dashboard: the operator who turned the page
   * off did not offer the node's view to the API's clients, and this machine's tools could read
   * the data directory anyway.
   */
  page?: boolean;
  /** The node's API keys (reading from another machine). */
  keys: ApiKeys;
  /** Serve readers elsewhere without a key (`http.allowUnauthenticatedRemote`). */
  allowUnauthenticatedRemote: boolean;
  /**
   * Reverse proxies whose clients are told apart by the address they name (`http.trustedProxies`,
   * `client_address.ts`); none by default.
   */
  trustedProxies?: TrustedProxies;
  /** Other origins whose pages may open the socket (`http.allowedOrigins`). */
  allowedOrigins: readonly string[];
  /**
   * Largest message a page may send once it may read, in bytes (`http.maxRequestBytes`; default
   * 1 MiB); a larger one closes the socket with 1009, as on `/v1/stream`.
   */
  maxRequestBytes?: number;
  /** Milliseconds between snapshots; default {@link DEFAULT_TICK_MS}. */
  tickMs?: number;
  /** Wall clock for the ledger history; default `Date.now`. */
  now?: () => number;
  /** Per-client limits; {@link DEFAULT_DASHBOARD_LIMITS} for what is left out. */
  limits?: Partial<DashboardLimits>;
  /**
   * The timers of the `auth` deadline ({@link DASHBOARD_AUTH_TIMEOUT_MS}) and of a close's grace
   * before the socket is dropped (`websocket_drop.ts`); default the global.
   */
  timers?: DrainTimers;
  /**
   * The node's memory guard, shared with `/v1/stream`'s sockets; default one of the dashboard's
   * own at its default limit, on `timers`.
   */
  memoryGuard?: WebSocketMemoryGuard;
  /** Where refusals are counted for `/metrics` (the edge's, shared with `/v1`); nowhere if absent. */
  stats?: EdgeStats;
  /**
   * Where the node's own failures on the dashboard's path go, with their stack: a socket's message
   * it could not handle (closed 1011, once a socket), a tick's snapshot that failed (the first of
   * a run, and the tick that works again); nowhere if absent.
   */
  log?: (line: string) => void;
}

/**
 * What one dashboard client may take (a client: the operator token, one API key, this machine, or
 * one address reading without a key, an IPv6 one by its /64: `client_address.ts`; every reader
 * behind one proxy or NAT is one client). Each open socket is a live-state
 * subscription sent a snapshot every tick, and each socket opened or state read asks every actor:
 * without a limit, one key could open sockets until the node had none left for anyone else.
 */
export interface DashboardLimits {
  /** Sockets one client may hold open at once (429 or close 1013, `key_concurrency_exceeded`). */
  socketsPerClient: number;
  /** Sockets one client may open per minute, bursts included (`rate_limited`). */
  socketOpensPerMinute: number;
  /** `GET /dashboard/state` reads one client may make per minute, bursts included (429). */
  stateReadsPerMinute: number;
  /**
   * Sockets reading without a key (each address's, `allowUnauthenticatedRemote`) open at once,
   * node-wide: past it, a socket opens as one that must send its `auth` (told `too_many_sockets`),
   * so the clients with a key still read however many addresses read without one.
   */
  anonymousSockets: number;
  /**
   * Sockets still to send their `auth` open at once, node-wide: one more pushes out the one that
   * has waited longest (`too_many_sockets`, close 1013; see `AuthPendingSockets`), which counts on
   * until its close fires; with as many pushed out and not closed, one more is refused (429).
   */
  authPendingSockets: number;
  /**
   * Sockets still to send their `auth` one address (an IPv6 one by its /64) may hold open at once
   * (429 `key_concurrency_exceeded`).
   */
  authPendingSocketsPerAddress: number;
  /**
   * `fraud_proof` asks one client may make per minute, bursts included (an `error`
   * `rate_limited` with `retryAfterS`; the socket stays open). Default
   * {@link DASHBOARD_FRAUD_PROOF_ASKS_PER_MINUTE}.
   */
  fraudProofAsksPerMinute: number;
  /** Clock in milliseconds for the per-minute allowances; default `performance.now`. */
  now?: () => number;
}

/**
 * `fraud_proof` asks one dashboard client may make per minute. A page asks when its user clicks
 * a proof, so 30 is more than a person clicks; each answer can be ~0.5 MiB (a proof carries its
 * job's input file, up to `MAX_JOB_INPUT_BYTES`, in hex), and without a bound one reader's 100-byte
 * asks kept the node encoding and sending them (review s82 dash F3).
 */
export const DASHBOARD_FRAUD_PROOF_ASKS_PER_MINUTE = 30;

/**
 * The limits a node runs with: `http.dashboardSocketsPerClient`,
 * `http.dashboardSocketOpensPerMinute`, `http.dashboardStateReadsPerMinute`,
 * `http.dashboardAnonymousSockets`, `http.dashboardAuthPendingSockets` and
 * `http.dashboardAuthPendingSocketsPerAddress` (why these values: `EDGE_DEFAULTS`).
 */
export const DEFAULT_DASHBOARD_LIMITS: DashboardLimits = Object.freeze({
  socketsPerClient: EDGE_DEFAULTS.dashboardSocketsPerClient,
  socketOpensPerMinute: EDGE_DEFAULTS.dashboardSocketOpensPerMinute,
  stateReadsPerMinute: EDGE_DEFAULTS.dashboardStateReadsPerMinute,
  anonymousSockets: EDGE_DEFAULTS.dashboardAnonymousSockets,
  authPendingSockets: EDGE_DEFAULTS.dashboardAuthPendingSockets,
  authPendingSocketsPerAddress: EDGE_DEFAULTS.dashboardAuthPendingSocketsPerAddress,
  fraudProofAsksPerMinute: DASHBOARD_FRAUD_PROOF_ASKS_PER_MINUTE,
});

/**
 * How long a socket that must say who it is (not from this machine, and no anonymous reading)
 * may stay open without an accepted `auth`: it holds no place in any allowance and gets no
 * snapshot, so without a deadline it stayed open for good. A page sends its `auth` as it opens.
 */
export const DASHBOARD_AUTH_TIMEOUT_MS = 10_000;

/** A snapshot a second: live enough to watch, a few asks per second to the actors. */
export const DEFAULT_TICK_MS = 1_000;
/** Ledger samples kept for the chart: 30 minutes at one a second. */
const LEDGER_HISTORY = 1_800;
/** Largest message a page may send by default: a job at the edge's prompt limit fits. */
const MAX_PAGE_MESSAGE_BYTES = 1 << 20;
/**
 * Largest message before the page may read: an `auth` with a token. Anything larger from a
 * client nobody let in closes the socket (1009) instead of being parsed.
 */
const MAX_UNAUTHENTICATED_MESSAGE_BYTES = 4096;
/** What a page may leave unread before updates to it are dropped. */
const MAX_PAGE_BUFFERED_BYTES = 4 << 20;
/** Tokens a page may get wrong on one socket before it is closed (1008). */
const MAX_BAD_TOKENS = 3;
/** WebSocket close code "Try Again Later" (RFC 6455 registry): a client over its allowance. */
const CLOSE_TRY_AGAIN_LATER = 1013;
/** WebSocket close code "Internal Error" (RFC 6455 registry): the node failed on one socket's turn. */
const CLOSE_INTERNAL_ERROR = 1011;
/**
 * Longest text of one failure in the node's log: a stack is a few hundred characters, and what a
 * bug threw may hold anything, a client's message included.
 */
const MAX_FAILURE_LOG_CHARS = 2_000;
/**
 * Live jobs a snapshot lists, the first submitted first (the rest counted in `leftOut`): what the
 * page draws (`SHOWN_LIVE_JOBS` in `dashboard/app.js`). A node keeps its whole queue live, each job
 * with up to `MAX_KEPT_TEXT` characters, and sent them all to every page every tick.
 */
const SNAPSHOT_LIVE_JOBS = 20;
/** Finished jobs a snapshot lists, newest first: what the page draws (`SHOWN_RECENT_JOBS`). */
const SNAPSHOT_RECENT_JOBS = 5;

const STATIC_FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "receipt_check.js": "text/javascript; charset=utf-8",
  "charts.js": "text/javascript; charset=utf-8",
  "training_panel.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};
const STATIC_DIR = new URL("./dashboard/", import.meta.url);

/**
 * A message fanned out to every open page, as the text a page gets: with every job's text
 * (`true`) or without it (`false`, see {@link withoutJobText}). Each form is encoded once per
 * message, whatever the number of pages.
 */
type Encoded = (withJobText: boolean) => string;

/** What the sources answered for one snapshot; `unavailable` names those that failed. */
interface Answers {
  peers: unknown[] | undefined;
  staticPeers: unknown[] | undefined;
  validator: Awaited<ReturnType<DashboardSources["validator"]>>;
  storage: unknown;
  models: Awaited<ReturnType<InferencePort["models"]>> | undefined;
  stats: InferenceStats | undefined;
  training: TrainingView | undefined;
  unavailable: string[];
}

/** The shared side of every open page: one snapshot per tick, fanned out. */
class DashboardHub {
  readonly #options: DashboardOptions;
  readonly #sessions = new Set<(message: Encoded) => void>();
  readonly #ledger: { time: number; balance: number; stake: number; locked: number }[] = [];
  #timer?: ReturnType<typeof setInterval>;
  #unsubscribe: (() => void)[] = [];
  /** The round of asks in progress, if any (see {@link DashboardHub.#ask}). */
  #asking?: Promise<Answers>;

  constructor(options: DashboardOptions) {
    this.#options = options;
  }

  /** Add a page; the hub runs while any page is open. */
  join(send: (message: Encoded) => void): () => void {
    this.#sessions.add(send);
    if (this.#sessions.size === 1) this.#start();
    return () => {
      this.#sessions.delete(send);
      if (this.#sessions.size === 0) this.#stop();
    };
  }

  /**
   * The sources' answers: one round of asks, shared by every snapshot asked for while it runs. A
   * snapshot is asked for by each page that opens and by each `GET /dashboard/state`: a burst of
   * them (one API key's reads, a reconnecting crowd) asked every actor once per request, seven
   * asks each in the mailboxes that carry the node's peer traffic.
   */
  #ask(): Promise<Answers> {
    this.#asking ??= this.#askSources().finally(() => (this.#asking = undefined));
    return this.#asking;
  }

  async #askSources(): Promise<Answers> {
    const { sources, inference } = this.#options;
    // A source that fails (an ask to a wedged or restarting actor timing out) is null like an
    // absent one, and named in `unavailable`: the page must not show it as switched off, nor its
    // last figures as live.
    const unavailable: string[] = [];
    const settle = <T>(name: string, p: Promise<T>) =>
      p.catch(() => {
        unavailable.push(name);
        return undefined;
      });
    const [peers, staticPeers, validator, storage, models, stats, training] = await Promise.all([
      settle("peers", sources.peers()),
      settle("staticPeers", sources.staticPeers?.() ?? Promise.resolve(undefined)),
      settle("validator", sources.validator()),
      settle("storage", sources.storage()),
      settle("models", inference.models()),
      settle("stats", inference.stats()) as Promise<InferenceStats | undefined>,
      settle("training", sources.training?.() ?? Promise.resolve(undefined)),
    ]);
    return { peers, staticPeers, validator, storage, models, stats, training, unavailable };
  }

  /**
   * The node's state now. `activity` (the feed's recent items, up to 200) is in it unless
   * `withActivity` is false: the ticks a live page gets every second leave it out, since the page
   * has it from its first snapshot and each new item as an `activity` message (re-sending ~30 KB a
   * second left a page on a slow link further behind the longer it stayed open).
   */
  async snapshot(withActivity = true): Promise<Record<string, JsonValue>> {
    const { sources, jobs } = this.#options;
    const answers = await this.#ask();
    const { peers, staticPeers, validator, storage, models, stats, training, unavailable } =
      answers;
    if (validator !== undefined) {
      const { balance, stake, locked } = validator.account;
      const time = (this.#options.now ?? Date.now)();
      const last = this.#ledger[this.#ledger.length - 1];
      if (last === undefined || time - last.time >= (this.#options.tickMs ?? DEFAULT_TICK_MS)) {
        this.#ledger.push({ time, balance, stake, locked });
        if (this.#ledger.length > LEDGER_HISTORY) this.#ledger.shift();
      }
    }
    return toJsonValue({
      type: "snapshot",
      node: sources.node,
      tree: sources.tree(),
      peers: peers ?? null,
      staticPeers: staticPeers ?? [],
      jobs: {
        ...jobs.snapshot({ live: SNAPSHOT_LIVE_JOBS, recent: SNAPSHOT_RECENT_JOBS }),
        stats: stats ?? null,
      },
      validator: validator ?? null,
      ledger: this.#ledger,
      storage: storage ?? null,
      training: training ?? null,
      models: models ?? [],
      unavailable,
      ...(withActivity ? { activity: sources.activity?.recent() ?? [] } : {}),
    }) as Record<string, JsonValue>;
  }

  /**
   * Send `message` to every page. It is encoded (and its job text blanked) once per form, not
   * once per page: a snapshot carries every live job's output (up to 4 KiB each), and each open
   * page — any API key may open as many as it likes — re-encoding it every tick made the node's
   * work grow with the pages watching, not with what it does.
   */
  #broadcast(message: unknown): void {
    const forms = new Map<boolean, string>();
    const encoded: Encoded = (withJobText) => {
      let text = forms.get(withJobText);
      if (text === undefined) {
        text = JSON.stringify(withJobText ? message : withoutJobText(message));
        forms.set(withJobText, text);
      }
      return text;
    };
    for (const send of this.#sessions) send(encoded);
  }

  #start(): void {
    const { sources, jobs, tickMs } = this.#options;
    this.#unsubscribe = [
      sources.onLifecycle((item) => this.#broadcast({ type: "lifecycle", event: item })),
      jobs.subscribe((event) => this.#broadcast({ type: "job", event: toJsonValue(event) })),
      ...(sources.activity
        ? [sources.activity.subscribe((item) => this.#broadcast({ type: "activity", item }))]
        : []),
    ];
    let busy = false;
    /**
     * Ticks failed in a row. A failed tick is the node's bug (a source that throws where it should
     * reject, a value `toJsonValue` cannot encode): logged at the first of a run and at the tick
     * that works again, not every second, and never thrown, for a rejection nobody handles ends
     * the process (review s82 vdash). The pages keep their last snapshot meanwhile.
     */
    let failedTicks = 0;
    this.#timer = setInterval(async () => {
      if (busy) return; // a slow actor: skip a tick rather than pile asks up
      busy = true;
      try {
        this.#broadcast(await this.snapshot(false));
        if (failedTicks > 0) {
          this.#options.log?.(`dashboard: snapshots work again after ${failedTicks} failed ticks`);
          failedTicks = 0;
        }
      } catch (error) {
        if (failedTicks++ === 0) {
          this.#options.log?.(
            `error: a dashboard snapshot failed; pages get none until one works (logged again ` +
              `when one does): ${failureText(error)}`,
          );
        }
      } finally {
        busy = false;
      }
    }, tickMs ?? DEFAULT_TICK_MS);
  }

  #stop(): void {
    clearInterval(this.#timer);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#unsubscribe = [];
  }
}

/**
 * `error` for the node's log: its stack (or its name and message), clipped to
 * {@link MAX_FAILURE_LOG_CHARS}. Never throws: a thrown value may be anything, one whose
 * `toString` is not a function included.
 */
function failureText(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error
      ? error.stack ?? `${error.name}: ${error.message}`
      : `a thrown ${typeof error}: ${String(error)}`;
  } catch {
    text = `a thrown ${typeof error} that cannot be shown`;
  }
  return text.length > MAX_FAILURE_LOG_CHARS ? `${text.slice(0, MAX_FAILURE_LOG_CHARS)}…` : text;
}

/**
 * `message` with every job's text blanked (a snapshot's `jobs`, a job event): what a page
 * reading with an API key gets, so one client never reads another's output. A `job_ended`'s
 * summary and a fraud proof are sent to such a page from an allow-list of fields
 * ({@link summaryForReader}, {@link proofForReader}): a deny-list blanked the text and left what
 * gives it back, the nonce beside the input's HMAC and the output's plain hash (review s82 dash
 * F1, F2).
 */
export function withoutJobText(message: unknown): unknown {
  if (typeof message !== "object" || message === null) return message;
  const m = message as Record<string, unknown>;
  if (m.type === "snapshot" && m.jobs !== undefined) return { ...m, jobs: blankText(m.jobs) };
  if (m.type === "job" && m.event !== undefined) return { ...m, event: eventForReader(m.event) };
  if (m.type === "fraud_proof") return { ...m, proof: proofForReader(m.proof) };
  return message;
}

/** A job event without its text; a `job_ended` with its summary from the allow-list. */
function eventForReader(event: unknown): unknown {
  const blanked = blankText(event);
  if (!isRecord(blanked) || blanked.type !== "job_ended") return blanked;
  return { ...blanked, summary: summaryForReader(blanked.summary) };
}

/**
 * A job's generation parameters a reader is sent: the numbers, not `stop` (the client's own
 * strings, which may be as telling as its prompt).
 */
const READER_PARAMS_FIELDS = ["maxTokens", "temperature", "topK", "topP", "seed"] as const;
/**
 * A receipt's fields a reader is sent: what was run, by whom, how many tokens, how fast. Left
 * out: `inputHash` (an HMAC of the prompt keyed by the job's nonce), `outputHash` (SHA-256 of the
 * output: a short answer is read back by hashing guesses), `commitment` (hashes of the output's
 * tokens), `params.stop`, and `sig`, which cannot be checked without what is left out.
 */
const READER_RECEIPT_FIELDS = [
  "v",
  "kind",
  "jobId",
  "model",
  "tokenCount",
  "end",
  "promptTokens",
  "worker",
] as const;
/** A job's fields a reader is sent: never its prompt, input, inputs (tensors) or nonce. */
const READER_JOB_FIELDS = ["kind", "model", "precision", "requester"] as const;
/** A fraud proof's own fields a reader is sent (its job and receipt as above). */
const READER_PROOF_FIELDS = ["v", "kind", "issuedAt", "validator"] as const;
/** A cited position's fields: where, and the numbers the validator measured there. */
const READER_CITED_FIELDS = ["position", "logProb", "projection", "lo", "hi"] as const;
/** A job summary's fields a reader is sent: how the job went, never what it said. */
const READER_SUMMARY_FIELDS = ["jobId", "finishReason", "usage", "timings", "worker"] as const;

/** Whether `value` is a plain (JSON) object. */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The `fields` of `value` it has; undefined when it is no object. */
function pick(value: unknown, fields: readonly string[]): Record<string, unknown> | undefined {
  if (!isRecord(value)) return undefined;
  const out: Record<string, unknown> = {};
  for (const field of fields) if (Object.hasOwn(value, field)) out[field] = value[field];
  return out;
}

/** Generation parameters as a reader is sent them (`params` absent: tensor jobs). */
function paramsForReader(params: unknown): Record<string, unknown> | null | undefined {
  return params === null ? null : pick(params, READER_PARAMS_FIELDS);
}

/** A receipt (as JSON) as a reader is sent it: {@link READER_RECEIPT_FIELDS}. */
function receiptForReader(receipt: unknown): Record<string, unknown> | undefined {
  const out = pick(receipt, READER_RECEIPT_FIELDS);
  if (out === undefined || !isRecord(receipt)) return out;
  if (Object.hasOwn(receipt, "params")) out.params = paramsForReader(receipt.params);
  if (isRecord(receipt.timings)) {
    out.timings = pick(receipt.timings, ["startedAt", "firstTokenMs", "totalMs"]);
  }
  return out;
}

/** A job summary (as JSON) as a reader is sent it: numbers, the error's code, the receipt's numbers. */
function summaryForReader(summary: unknown): unknown {
  const out = pick(summary, READER_SUMMARY_FIELDS);
  if (out === undefined || !isRecord(summary)) return out;
  if (isRecord(summary.error)) out.error = pick(summary.error, ["code"]);
  if (summary.receipt !== undefined) out.receipt = receiptForReader(summary.receipt);
  return out;
}

/**
 * A fraud proof (as JSON) as a reader the job's text is blanked for is sent it: who convicted
 * whom, of what kind of fraud, when, on which job and model, at which positions, with the
 * numbers measured there. Nothing of the job's text, nor anything that lets it be tested: the
 * prompt, input and nonce, the receipt's input and output hashes and commitment, the opened
 * chunks' tokens and Merkle paths, the served proof data, the tensor outputs, the stop strings
 * and the signatures (which cannot be checked without them). The operator gets the whole proof.
 */
function proofForReader(proof: unknown): unknown {
  const out = pick(proof, READER_PROOF_FIELDS);
  if (out === undefined || !isRecord(proof)) return undefined;
  if (isRecord(proof.job)) {
    const job = pick(proof.job, READER_JOB_FIELDS)!;
    if (Object.hasOwn(proof.job, "params")) job.params = paramsForReader(proof.job.params);
    out.job = job;
  }
  if (proof.receipt !== undefined) out.receipt = receiptForReader(proof.receipt);
  if (Array.isArray(proof.chunks)) {
    out.chunks = proof.chunks.map((chunk) => pick(chunk, ["index"]) ?? null);
  }
  if (Array.isArray(proof.cited)) {
    out.cited = proof.cited.map((cited) => pick(cited, READER_CITED_FIELDS) ?? null);
  }
  return out;
}

function blankText(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(blankText);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === "text" && typeof v === "string" ? "" : blankText(v);
  }
  return out;
}

/** Whether a WebSocket message (text, or binary: `ArrayBuffer`, `Blob`) is over `limit` bytes. */
function messageBytesOver(data: unknown, limit: number): boolean {
  // Characters first: a string of n characters is at least n bytes.
  if (typeof data === "string") {
    return data.length > limit || new TextEncoder().encode(data).length > limit;
  }
  if (data instanceof ArrayBuffer) return data.byteLength > limit;
  if (data instanceof Blob) return data.size > limit;
  return false;
}

/**
 * The dashboard's routes; mount at the root, before the origin policy: the socket lets the
 * node's own page in (see {@link isOwnOrigin}; the node does not know its public name in
 * advance) and puts every other origin through the same policy as `/v1`.
 */
export function dashboardRoutes(options: DashboardOptions): Hono<EdgeEnv> {
  const hub = new DashboardHub(options);
  const maxMessageBytes = options.maxRequestBytes ?? MAX_PAGE_MESSAGE_BYTES;
  const routes = new Hono<EdgeEnv>();
  const otherPages = originPolicy(options.allowedOrigins);
  const cache = new Map<string, Uint8Array>();
  const limits = { ...DEFAULT_DASHBOARD_LIMITS, ...options.limits };
  const timers = options.timers ?? SYSTEM_TIMERS;
  const guard = options.memoryGuard ?? new WebSocketMemoryGuard({ timers });
  const sockets = new KeyLimits({
    concurrency: limits.socketsPerClient,
    requestsPerMinute: limits.socketOpensPerMinute,
    now: limits.now,
    things: {
      holder: "this client",
      held: "dashboard sockets open",
      started: "dashboard sockets",
      concurrencySetting: "http.dashboardSocketsPerClient",
      rateSetting: "http.dashboardSocketOpensPerMinute",
    },
  });
  const stateReads = new KeyLimits({
    // Reads under way at once share one round of asks: the allowance per minute bounds them.
    concurrency: Number.POSITIVE_INFINITY,
    requestsPerMinute: limits.stateReadsPerMinute,
    now: limits.now,
    things: {
      holder: "this client",
      held: "dashboard state reads under way",
      started: "dashboard state reads",
      rateSetting: "http.dashboardStateReadsPerMinute",
    },
  });
  const fraudProofAsks = new KeyLimits({
    concurrency: Number.POSITIVE_INFINITY, // answered at once: only the rate bounds them
    requestsPerMinute: limits.fraudProofAsksPerMinute,
    now: limits.now,
    things: {
      holder: "this client",
      held: "fraud proof asks under way",
      started: "fraud proof asks",
    },
  });
  /**
   * Each kept proof's answer as encoded for each form (with job text, without), so asking again
   * costs a lookup, not a copy and an encoding of up to ~0.5 MiB. Keyed by the kept proof itself
   * (`ActivitySource.fraudProof` returns the one it keeps): an entry lasts as long as the feed
   * keeps the proof, and no longer.
   */
  const encodedProofs = new WeakMap<object, Map<string, string>>();
  /** The answer to an ask for the kept `proof` `id`, in the form for a page with or without text. */
  const encodedProof = (id: string, proof: JsonValue, withJobText: boolean): string => {
    const message = { type: "fraud_proof", id, proof };
    const encode = () => JSON.stringify(withJobText ? message : withoutJobText(message));
    if (typeof proof !== "object" || proof === null) return encode();
    let forms = encodedProofs.get(proof);
    if (forms === undefined) encodedProofs.set(proof, forms = new Map());
    const form = `${withJobText} ${id}`;
    let text = forms.get(form);
    if (text === undefined) forms.set(form, text = encode());
    return text;
  };
  /** The node's anonymous readers' sockets, every address together. */
  const anonymousSockets = new OpenSockets(
    limits.anonymousSockets,
    (open) =>
      new EdgeError(
        "too_many_sockets",
        `the node already has ${open} anonymous dashboard sockets open, its limit ` +
          "(http.dashboardAnonymousSockets): send {type:'auth', token} with an API key or the " +
          "operator token to read, or retry later",
        { retryAfterS: 1 },
      ),
  );
  /** Every place of a socket still to send its `auth` is back within the auth deadline. */
  const authPendingRetryS = DASHBOARD_AUTH_TIMEOUT_MS / 1000;
  const authPendingSockets = new AuthPendingSockets(
    limits.authPendingSockets,
    (leaving) =>
      new EdgeError(
        "too_many_sockets",
        `the node holds at most ${limits.authPendingSockets} dashboard sockets waiting for their ` +
          `auth (http.dashboardAuthPendingSockets), and ${leaving} more it pushed out have not ` +
          "closed yet: retry after the Retry-After seconds",
        { retryAfterS: authPendingRetryS },
      ),
  );
  /** What a socket pushed out of the waiting places is told. */
  const pushedOut = () =>
    new EdgeError(
      "too_many_sockets",
      `the node holds at most ${limits.authPendingSockets} dashboard sockets waiting for their ` +
        "auth (http.dashboardAuthPendingSockets) and this one had waited longest: reconnect and " +
        "send {type:'auth', token} as the socket opens",
      { retryAfterS: 1 },
    );
  const authPendingPerAddress = new OpenSockets(
    limits.authPendingSocketsPerAddress,
    (open) =>
      new EdgeError(
        "key_concurrency_exceeded",
        `this address already has ${open} dashboard sockets waiting for their auth, its limit ` +
          "(http.dashboardAuthPendingSocketsPerAddress); send their auth or close one",
        { retryAfterS: authPendingRetryS },
      ),
  );
  /**
   * A place for a socket that reads without saying who it is: this machine's in its allowance; an
   * anonymous reader's in its address's allowance and in the node's anonymous sockets (which throw
   * `too_many_sockets` when all are taken, giving back the address's place and its opening).
   */
  const readerPlace = (onThisMachine: boolean, address: string): () => void => {
    const client = sockets.admit(clientOf(undefined, onThisMachine, address));
    if (onThisMachine) return client;
    let node: () => void;
    try {
      node = anonymousSockets.take();
    } catch (error) {
      client(true);
      throw error;
    }
    return () => {
      node();
      client();
    };
  };
  /**
   * A place for a socket still to send its `auth`: in its address's (or throw) and in the node's,
   * whence it may be pushed out (`pushOut`, see {@link AuthPendingSockets}; or throw when the
   * pushed-out sockets have not closed yet). Both are held until the socket's `onclose` (or an
   * accepted `auth`), never given back when the node closes it: see `dashboard_socket_caps.ts`.
   */
  const authPendingPlace = (address: string, pushOut: () => void): AuthPendingPlace => {
    const place = authPendingPerAddress.take(address);
    let node: AuthPendingPlace;
    try {
      node = authPendingSockets.join(pushOut);
    } catch (error) {
      place(); // refused: the address's place is not held either
      throw error;
    }
    return {
      leave: () => {
        node.leave();
        place();
      },
      // The address's place is held on until the `onclose`: it bounds what one address holds.
      closing: () => node.closing(),
    };
  };
  /** Count a refusal for `/metrics`, as the app counts `/v1`'s; answer it if it is a request's. */
  const refused = (error: unknown): Response => {
    options.stats?.countRefusal(error);
    return errorResponse(error);
  };

  const serveFile = async (name: string) => {
    let body = cache.get(name);
    if (body === undefined) {
      body = await Deno.readFile(new URL(name, STATIC_DIR));
      cache.set(name, body);
    }
    return new Response(body as BodyInit, {
      headers: {
        "content-type": STATIC_FILES[name],
        "cache-control": "no-cache",
        // The page loads only its own scripts and talks only to this node: `'self'` covers its
        // own origin's `ws:`/`wss:` (CSP Level 3); `ws: wss:` let a script that got into the
        // page (the operator token is in its session) open a socket to any host.
        "content-security-policy": "default-src 'self'; connect-src 'self'; " +
          "img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        "x-content-type-options": "nosniff",
      },
    });
  };
  const page = options.page ?? true;
  if (page) {
    routes.get("/", () => serveFile("index.html"));
    // Only names with an extension: `live` and `state` are routes of their own, and passing a
    // WebSocket upgrade on through `next()` would have Hono copy (and break) its response.
    routes.get("/dashboard/:file{[a-z_]+\\.(?:html|js|css)}", async (c, next) => {
      const file = c.req.param("file");
      if (!(file in STATIC_FILES)) return await next();
      return await serveFile(file);
    });
  }

  /**
   * Whether a request comes from the operator's own machine, whose pages see every job's text:
   * as `/v1` decides it (`fromThisMachine`: a reverse proxy on this machine is a loopback peer
   * too, but relays other machines' clients).
   */
  const trusted = options.trustedProxies ?? NO_TRUSTED_PROXIES;
  const ownMachine = (addr: Deno.Addr | undefined, request: Request) =>
    fromThisMachine(addr, request, trusted);
  /** The address a keyless reader is counted by: a trusted proxy's client's, behind one. */
  const addressOf = (addr: Deno.Addr | undefined, request: Request) =>
    clientAddress(addr, request, trusted);
  /**
   * Whether a request may read without saying who it is: from this machine, to an address or
   * `localhost` (a rebinding page on this machine reaches the node under its own name), unless
   * unauthenticated remote reads are allowed.
   */
  const openRead = (addr: Deno.Addr | undefined, request: Request) =>
    ownMachine(addr, request) || options.allowUnauthenticatedRemote;
  /** An API key or the operator token: the access it grants, if any. */
  const grant = (token: string) => grantOf(token, options.keys, options.operatorToken);
  /**
   * Who a client is, for its limits: the operator token, an API key (by its id, never the key),
   * this machine, or one address reading without a key (`allowUnauthenticatedRemote`): each
   * anonymous reader has its own allowance, so one of them cannot take every place.
   */
  const clientOf = (
    token: string | undefined,
    onThisMachine: boolean,
    address: string,
  ): string => {
    const granted = token === undefined ? undefined : grant(token);
    if (granted === "operator") return "operator";
    if (granted === "read") return `key ${options.keys.identify(`Bearer ${token}`).keyId}`;
    return onThisMachine ? "this machine" : `anonymous ${address}`;
  };

  // The state and the socket: the node's own page, or an origin the policy lets in (a page of
  // another origin could not read the state, but would make the node compute snapshots).
  for (const path of ["/dashboard/state", "/dashboard/live"]) {
    routes.use(path, async (c, next) => {
      if (isOwnOrigin(c.req.header("origin"), c.req.header("host"))) return await next();
      return await otherPages(c, next);
    });
  }

  routes.get("/dashboard/state", async (c) => {
    // Without the page, the state is this machine's alone (see `DashboardOptions.page`).
    if (!page && !ownMachine(c.env?.remoteAddr, c.req.raw)) {
      // Answered as the app answers a route it lacks: not counted as a refusal.
      return errorResponse(
        new EdgeError(
          "not_found",
          "no route for GET /dashboard/state: this node's dashboard is off (--no-dashboard), " +
            "and without it the state is served to the node's own machine only (run " +
            "cli.ts status there)",
        ),
      );
    }
    // Read as `/v1` and the DNS-rebinding guard read it (`credentials.ts`), not more loosely.
    const bearer = bearerToken(c.req.header("authorization"));
    const open = openRead(c.env?.remoteAddr, c.req.raw);
    const granted = bearer === undefined ? undefined : grant(bearer);
    if (!open && granted === undefined) {
      options.stats?.countRefusal(new EdgeError("api_key_required", "no key"));
      return c.json({
        error: {
          code: "api_key_required",
          message: "the dashboard's state is served to this machine, or with an API key or " +
            "the operator token (Authorization: Bearer …)",
        },
      }, 401);
    }
    // As on the socket: job text only for this machine and the operator token.
    const mine = ownMachine(c.env?.remoteAddr, c.req.raw);
    let release: () => void;
    try {
      release = stateReads.admit(clientOf(bearer, mine, addressOf(c.env?.remoteAddr, c.req.raw)));
    } catch (error) {
      return refused(error);
    }
    try {
      const snapshot = await hub.snapshot();
      return c.json(mine || granted === "operator" ? snapshot : withoutJobText(snapshot));
    } finally {
      release();
    }
  });

  routes.get("/dashboard/live", (c) => {
    // The socket is the page's: with the page off, answered as a route the node lacks.
    if (!page) {
      return errorResponse(new EdgeError("not_found", "no route for GET /dashboard/live"));
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json(
        { error: { code: "upgrade_required", message: "send a WebSocket upgrade" } },
        426,
      );
    }
    // Read before the upgrade: the request's peer address is gone once it is upgraded.
    let access: "none" | "read" | "operator" = openRead(c.env?.remoteAddr, c.req.raw)
      ? "read"
      : "none";
    // A key or the operator token in the handshake reads at once, in its client's allowance,
    // never in the places of sockets still to send their `auth` (`dashboard_handshake.ts`).
    let handshake: DashboardHandshake;
    try {
      handshake = readDashboardHandshake(c.req.raw);
    } catch (error) {
      return refused(error);
    }
    const handshakeGrant = handshake.token === undefined ? undefined : grant(handshake.token);
    // A wrong token is refused before the upgrade and counted, as a wrong `auth` is: upgraded, it
    // read nothing and was counted nowhere, so guesses left no trace in /metrics (review s75
    // vhandshake F3). A page learns only that the handshake failed, and connects again without.
    if (handshake.token !== undefined && handshakeGrant === undefined) {
      return refused(
        new EdgeError(
          "bad_token",
          "that token is not accepted: give an API key or the operator token, or none",
        ),
      );
    }
    // Other clients' prompts and outputs are theirs: only the operator's own machine and the
    // operator token see job text; an API key reads everything else.
    const onThisMachine = ownMachine(c.env?.remoteAddr, c.req.raw);
    const address = addressOf(c.env?.remoteAddr, c.req.raw);
    /**
     * This socket's place in its client's allowance, held from when it may read to its close:
     * taken before the upgrade for a client known then (this machine), else at its first `auth`
     * accepted. A page that gives the operator token later keeps the place it had.
     */
    let release: (() => void) | undefined;
    /**
     * Why a socket that could have read without a key must send its `auth`: the node's anonymous
     * places are all taken. It is told so, and may still read with a key or the operator token.
     */
    let noAnonymousPlace: EdgeError | undefined;
    if (handshakeGrant !== undefined) {
      try {
        release = sockets.admit(clientOf(handshake.token, onThisMachine, address));
      } catch (error) {
        return refused(error);
      }
      if (handshakeGrant === "operator" || access === "none") access = handshakeGrant;
    } else if (access !== "none") {
      try {
        release = readerPlace(onThisMachine, address);
      } catch (error) {
        if ((error as EdgeError).code !== "too_many_sockets") return refused(error);
        noAnonymousPlace = error as EdgeError;
        access = "none";
      }
    }
    /** This socket's place among those still to send their `auth`, held until one is accepted. */
    let authPending: AuthPendingPlace | undefined;
    if (access === "none") {
      try {
        authPending = authPendingPlace(address, () => pushOut());
      } catch (error) {
        return refused(error);
      }
      if (noAnonymousPlace !== undefined) options.stats?.countRefusal(noAnonymousPlace);
    }
    const giveBackPlaces = () => {
      authPending?.leave();
      release?.();
    };
    // Read at each send: a page that gives the operator token later sees job text from then on.
    const withJobText = () => access === "operator" || onThisMachine;
    const forThisPage = (message: unknown) => withJobText() ? message : withoutJobText(message);
    let upgraded: { socket: WebSocket; response: Response };
    try {
      // Answered with the dashboard's subprotocol when offered (a browser that offered some fails
      // a handshake answered with none), never with the one carrying the token.
      upgraded = Deno.upgradeWebSocket(
        c.req.raw,
        handshake.protocol === undefined ? {} : { protocol: handshake.protocol },
      );
    } catch (error) {
      giveBackPlaces(); // not a WebSocket after all: no socket to hold the place
      throw error;
    }
    const { socket, response } = upgraded;
    /** Close the socket, and drop it if its client has not answered within the grace. */
    const close = (code: number, reason: string) => closeThenDrop(socket, code, reason, timers);
    /** What the memory guard drops first: a socket still to send its `auth`, then one with no key. */
    const group = (keyed: boolean): GuardedSocketGroup =>
      access === "none" ? "pre_auth" : keyed ? "keyed" : "keyless";
    // Busy while the page's own prompt is queued or runs: the guard keeps such a socket at its first
    // check over the limit only. Queued counts here, unlike on `/v1/stream`, for one prompt at a
    // time, from the operator alone, cannot be queued to buy an exemption.
    const guarded = guard.track(
      socket,
      group(handshakeGrant !== undefined),
      () => prompt !== undefined && !prompt.signal.aborted,
    );
    /** The `auth` deadline of a socket that must say who it is, until it has. */
    let authDeadline: unknown;
    const clearAuthDeadline = () => {
      if (authDeadline !== undefined) timers.clearTimeout(authDeadline);
      authDeadline = undefined;
    };
    let badTokens = 0;
    /** Who this socket reads as, for the allowances it spends once open (`fraud_proof` asks). */
    let reader = clientOf(
      handshakeGrant === undefined ? undefined : handshake.token,
      onThisMachine,
      address,
    );
    let leave: (() => void) | undefined;
    let prompt: AbortController | undefined;
    /** Send `text` unless the page stopped reading: it loses updates, never the node's memory. */
    const sendText = (text: string) => {
      if (socket.readyState !== WebSocket.OPEN) return;
      if (socket.bufferedAmount > MAX_PAGE_BUFFERED_BYTES) return;
      socket.send(text);
    };
    const send = (message: unknown) => {
      if (socket.readyState === WebSocket.OPEN) sendText(JSON.stringify(message));
    };
    /**
     * The page's own prompt is never dropped: one runs at a time, its tokens bounded by its
     * `maxTokens`, and a page missing one of them, or its receipt, would be left "streaming…"
     * or would find the worker's receipt not matching the text it got.
     */
    const sendOwn = (message: unknown) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    };
    const refuse = (code: string, message: string, retryAfterS?: number) =>
      send({ type: "error", code, message, ...(retryAfterS === undefined ? {} : { retryAfterS }) });
    /** Whether newer sockets waiting for their `auth` pushed this one out: it is closing. */
    let wasPushedOut = false;
    const closePushedOut = () => {
      const { code, message, retryAfterS } = pushedOut();
      refuse(code, message, retryAfterS);
      close(CLOSE_TRY_AGAIN_LATER, "pushed out by newer sockets waiting for their auth");
    };
    /**
     * Newer sockets waiting for their `auth` pushed this one out (only ever after this handler
     * has returned, so `socket` is there); one pushed out before it opened is closed as it opens.
     */
    function pushOut(): void {
      wasPushedOut = true;
      clearAuthDeadline();
      options.stats?.countRefusal(pushedOut());
      if (socket.readyState === WebSocket.OPEN) closePushedOut();
    }
    const welcome = async () => {
      send({ type: "hello", node: options.sources.node, access });
      send(forThisPage(await hub.snapshot()));
      // A page that left during the snapshot has had its close: joining now would never end.
      if (socket.readyState !== WebSocket.OPEN) return;
      leave ??= hub.join((encoded) => sendText(encoded(withJobText())));
    };
    /** As a message's handler: a welcome that fails (a source that throws) closes this socket. */
    const welcomeOrClose = () =>
      welcome().catch(() => close(CLOSE_INTERNAL_ERROR, "the node could not read its state"));
    socket.onopen = () => {
      if (wasPushedOut) return closePushedOut();
      if (access !== "none") void welcomeOrClose();
      else {
        send({ type: "hello", node: options.sources.node, access });
        if (noAnonymousPlace !== undefined) {
          const { code, message, retryAfterS } = noAnonymousPlace;
          refuse(code, message, retryAfterS);
        } else {
          refuse(
            "api_key_required",
            "send {type:'auth', token} with an API key or the operator token",
          );
        }
        authDeadline = timers.setTimeout(() => {
          authDeadline = undefined;
          if (release !== undefined || socket.readyState !== WebSocket.OPEN) return;
          // Its waiting place turns over now, not when a client that never answers lets it go.
          authPending?.closing();
          // Refused at its open for want of an anonymous place (counted then): as over an allowance.
          if (noAnonymousPlace !== undefined) {
            return close(
              CLOSE_TRY_AGAIN_LATER,
              "no place for anonymous dashboard readers and no accepted auth: retry later",
            );
          }
          options.stats?.countRefusal(new EdgeError("api_key_required", "no auth in time"));
          close(1008, `no accepted auth within ${DASHBOARD_AUTH_TIMEOUT_MS / 1000} s`);
        }, DASHBOARD_AUTH_TIMEOUT_MS);
      }
    };
    let ended = false;
    socket.onclose = () => {
      // Once: a socket dropped after its close's grace may see a second `onclose`.
      if (ended) return;
      ended = true;
      guarded.untrack();
      clearAuthDeadline();
      leave?.();
      giveBackPlaces();
      prompt?.abort();
    };
    /** Whether the node failed on one of this socket's messages: it is closing, and reads no more. */
    let failed = false;
    /**
     * One page's message. What it throws closes that page's socket (1011), never the node: a
     * throw in a WebSocket event handler is uncaught, and an uncaught error ends the process
     * (review s82 dash F0: one message `null`, from a client nobody let in, did). It is the node's
     * bug, whatever the error says: counted as a 5xx (`veriflow_http_errors_total`) and logged
     * with its stack, once a socket (review s82 vdash V1: it was swallowed, leaving no trace).
     */
    socket.onmessage = (event) => {
      if (failed) return;
      try {
        onMessage(event);
      } catch (error) {
        failed = true;
        options.stats?.countRefusal(
          httpStatusOf(error) >= 500 ? error : new Error("a dashboard message's handler threw"),
        );
        options.log?.(
          `error: internal error handling a dashboard socket's message (closed 1011): ${
            failureText(error)
          }`,
        );
        close(CLOSE_INTERNAL_ERROR, "the node could not handle that message");
      }
    };
    const onMessage = (event: MessageEvent) => {
      if (wasPushedOut) return; // closing
      const limit = access === "none" ? MAX_UNAUTHENTICATED_MESSAGE_BYTES : maxMessageBytes;
      // Binary messages too: refused, but one over the limit closes the socket as text does.
      if (messageBytesOver(event.data, limit)) {
        return close(1009, `message over ${limit} bytes`);
      }
      if (typeof event.data !== "string") return refuse("bad_message", "messages are JSON text");
      // As `/v1` bodies and `/v1/stream` frames: refused before the parser, which would hold the
      // event loop as long as a deeply nested text takes it (`json_depth.ts`).
      if (nestsDeeperThan(event.data, MAX_JSON_DEPTH)) {
        return refuse("bad_message", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(event.data);
      } catch {
        return refuse("bad_message", "not JSON");
      }
      // `null`, an array, a number or a string is JSON too, but no message: each is an object.
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        return refuse("bad_message", "a message is a JSON object with a `type`");
      }
      const message = parsed as { type?: unknown; token?: unknown; job?: unknown; id?: unknown };
      // Named by its `typeof`, never `String()`: an object's `toString` may be anything, `null`
      // included, and `String()` of it throws (review s82 vdash V1: a client nobody let in got the
      // socket closed as a node bug, 1011).
      if (typeof message.type !== "string") {
        return refuse("bad_message", `a message's type is a string, not ${typeof message.type}`);
      }
      switch (message.type) {
        case "auth": {
          const granted = typeof message.token === "string" ? grant(message.token) : undefined;
          if (granted === undefined) {
            options.stats?.countRefusal(new EdgeError("bad_token", "that token is not accepted"));
            if (++badTokens >= MAX_BAD_TOKENS) return close(1008, "tokens not accepted");
            return refuse("bad_token", "that token is not accepted");
          }
          if (release === undefined) {
            try {
              release = sockets.admit(clientOf(message.token as string, onThisMachine, address));
            } catch (error) {
              options.stats?.countRefusal(error);
              const { code, message, retryAfterS } = error as EdgeError;
              refuse(code, message, retryAfterS);
              return close(
                CLOSE_TRY_AGAIN_LATER,
                code === "rate_limited"
                  ? "dashboard sockets opened too fast: retry later"
                  : "too many dashboard sockets open for this client",
              );
            }
            clearAuthDeadline();
            // It reads in its client's allowance now: its place among the waiting is free.
            authPending?.leave();
            authPending = undefined;
          }
          const before = access;
          if (granted === "operator" || access === "none") {
            access = granted;
            reader = clientOf(message.token as string, onThisMachine, address);
          }
          guarded.regroup(group(true));
          // A snapshot only when the access changed: repeated auths cost a hello, no more.
          if (access === before) return send({ type: "hello", node: options.sources.node, access });
          return void welcomeOrClose();
        }
        case "fraud_proof": {
          if (access === "none") return refuse("api_key_required", "authenticate first");
          // Before the ask is counted: a malformed one spends none of the client's allowance.
          const id = message.id;
          if (typeof id !== "string") {
            return refuse("bad_message", `a fraud_proof's id is a string, not ${typeof id}`);
          }
          try {
            fraudProofAsks.admit(reader)();
          } catch (error) {
            options.stats?.countRefusal(error);
            const { code, message, retryAfterS } = error as EdgeError;
            return refuse(code, message, retryAfterS);
          }
          const proof = options.sources.activity?.fraudProof(id);
          if (proof === undefined) return refuse("not_found", "no such fraud proof kept here");
          return sendText(encodedProof(id, proof, withJobText()));
        }
        case "cancel":
          prompt?.abort();
          return;
        case "prompt": {
          if (access !== "operator") {
            return refuse(
              "operator_token_required",
              "running a job from the dashboard needs the operator token (in the node's data " +
                "directory, operator.token)",
            );
          }
          const parsed = textJobSchema.safeParse(message.job);
          if (!parsed.success) return refuse("invalid_job", parsed.error.message);
          if (prompt !== undefined && !prompt.signal.aborted) {
            return refuse("busy", "one prompt at a time per page");
          }
          const running = new AbortController();
          prompt = running;
          // Once it has ended, the page may send the next one.
          void runPrompt(parsed.data, running.signal, sendOwn).finally(() => {
            if (prompt === running) prompt = undefined;
          });
          return;
        }
        default:
          return refuse("bad_message", `unknown message type ${message.type}`);
      }
    };
    return response;
  });

  /** The page's own job: its tokens, then its summary with the receipt. */
  async function runPrompt(
    job: import("../protocols/job.ts").TextJob,
    signal: AbortSignal,
    send: (message: unknown) => void,
  ): Promise<void> {
    try {
      const handle = await options.inference.submit(job, { signal });
      send({ type: "prompt_started", jobId: handle.jobId, model: handle.model.name });
      for await (const token of handle.tokens) {
        send({ type: "prompt_token", index: token.index, text: token.text });
      }
      const summary = await handle.done;
      send({ type: "prompt_done", summary: toJsonValue(summary) });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      send({
        type: "prompt_error",
        code: typeof code === "string" ? code : "failed",
        message: (error as Error).message,
      });
    }
  }

  return routes;
}
