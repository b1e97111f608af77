/**
 * The limits and access rules of the HTTP/WebSocket edge, in one place: what `createApp` takes
 * (`edge`), what the node's configuration holds under `http` (the zod fields below are spread
 * into `node/config.ts`'s `http` object), and the defaults of both. README, "Limits", says what
 * each one is for and how to change it; every refusal names the option that caused it.
 *
 * @module
 */
import { z } from "zod";
import { GENERATION_LIMITS } from "../protocols/job.ts";
import { API_KEY_CHARS, MIN_API_KEY_CHARS } from "./api_keys.ts";
import { SHELL_HOME_REFUSAL, startsAtShellHome } from "../node/default_data_dir.ts";
import { isTrustedProxyEntry, trustedProxyRefusal } from "./trusted_proxies.ts";
import { METRICS_ACCESS, type MetricsAccess } from "./metrics_access.ts";
import {
  DEFAULT_TRUSTED_PROXY_HEADER,
  TRUSTED_PROXY_HEADERS,
  type TrustedProxyHeader,
} from "./forwarded_for.ts";

/** The edge's limits and access rules (all fields of the node configuration's `http`). */
export interface EdgeConfig {
  /**
   * Largest HTTP request body and largest WebSocket message, in bytes; checked before a byte is
   * parsed (HTTP 413 `request_too_large`; WebSocket close 1009).
   */
  maxRequestBytes: number;
  /**
   * Most bytes of request bodies (a completion's JSON) the node holds at once while reading
   * them, every request together; a body that does not fit is refused (429
   * `too_many_request_bodies`, `Retry-After`). Absent: {@link BUFFERED_BODIES} bodies of
   * `maxRequestBytes`; never less than one ({@link bufferedBodyBytesOf}).
   */
  maxBufferedBodyBytes?: number;
  /**
   * Longest prompt in characters (a chat's prompt as rendered from its messages), checked
   * before tokenisation (400 `prompt_too_long`). Tokenising is synchronous: this bounds how
   * long one request can hold the event loop.
   */
  maxPromptChars: number;
  /**
   * Most chat messages, content parts included, in one `/v1/chat/completions` request (400
   * `too_many_messages`), counted before the body is validated: validating costs about a
   * microsecond per item, on the event loop.
   */
  maxChatMessages: number;
  /**
   * A client that has read nothing for this long while its job waits to send is cut off and
   * its job cancelled, freeing its slot.
   */
  clientIdleTimeoutMs: number;
  /**
   * Longest a request body (a completion's JSON) may take to arrive whole, from when the route
   * begins reading it; past it the request gets 408 `request_timeout` and the rest of the body
   * is not read, so a client that trickles its body or stalls after the headers cannot hold the
   * request and the bytes it sent. A file upload (`POST /v1/files`), which may be any size, is
   * held to it as a silence instead: no bytes for this long and it gets the 408, its put
   * abandoned.
   */
  requestBodyTimeoutMs: number;
  /**
   * On shutdown, open requests and the jobs of open WebSockets get this long to finish; what is
   * still open then is cut (requests aborted, WebSockets closed) and the node stops anyway.
   */
  drainTimeoutMs: number;
  /**
   * Browser origins (`https://app.example`) allowed to call the API; `"*"` allows any. A
   * request with another `Origin` is refused (403 `origin_not_allowed`). An allowed page is never
   * this machine's client (`fromThisMachine`): it needs what a client elsewhere needs.
   */
  allowedOrigins: string[];
  /**
   * Host names (`NAME` or `NAME:PORT`) a client on this machine may call the node by, besides
   * an address and `localhost`: a reverse proxy's. A request from this machine under any other
   * name is refused (421 `misdirected_request`): a DNS-rebinding page's, which would otherwise
   * read the API, `/metrics` and `/healthz` as a local client.
   */
  allowedHosts: string[];
  /** API keys clients send as `Authorization: Bearer KEY`. */
  apiKeys: string[];
  /**
   * A file with more API keys, one per line (`#` starts a comment). A full or relative path, not
   * one led by `~` (refused: only a shell expands it).
   */
  apiKeysFile?: string;
  /** Jobs one API key may have running or queued at once (429 `key_concurrency_exceeded`). */
  perKeyConcurrency: number;
  /** Jobs one API key may start per minute, bursts included (429 `rate_limited`). */
  perKeyRequestsPerMinute: number;
  /**
   * Without API keys the node serves loopback clients only; true serves anyone without a key.
   * Ignored when keys are configured (then every client needs one).
   */
  allowUnauthenticatedRemote: boolean;
  /**
   * Reverse proxies (IP addresses and CIDR ranges, IPv4 and IPv6) whose forwarding header
   * (`trustedProxyHeader`) names the client they relay (`client_address.ts`); a client behind one
   * is never this machine's. Empty (the default): every peer is the client, whatever headers it
   * sends.
   */
  trustedProxies: string[];
  /**
   * The one forwarding header the trusted proxies write, and the only one read from them:
   * `x-forwarded-for` (the default: nginx's `$proxy_add_x_forwarded_for`, Caddy, Traefik,
   * HAProxy's `option forwardfor`) or `forwarded` (RFC 7239). The other is never read: a proxy
   * passes on the one it does not write as its client wrote it.
   */
  trustedProxyHeader: TrustedProxyHeader;
  /**
   * Who may read `/metrics` (`metrics_access.ts`): `any` (the default) anyone who reaches the
   * port; `local` this machine's clients, or an API key or the operator token; `key` an API key
   * or the operator token only.
   */
  metricsAccess: MetricsAccess;
  /**
   * Dashboard sockets (`/dashboard/live`) one client may hold open at once: the operator token,
   * one API key, this machine, or one address reading without a key (429, or close 1013 at its
   * `auth`; `key_concurrency_exceeded`).
   */
  dashboardSocketsPerClient: number;
  /** Dashboard sockets one client may open per minute, bursts included (`rate_limited`). */
  dashboardSocketOpensPerMinute: number;
  /** `GET /dashboard/state` reads one client may make per minute, bursts included (429). */
  dashboardStateReadsPerMinute: number;
  /**
   * Dashboard sockets reading without a key (`allowUnauthenticatedRemote`) the node holds open
   * at once, every address together: past it, a socket must send an API key or the operator
   * token to read (`too_many_sockets`), so anonymous readers on many addresses cannot take the
   * places of the clients with a key.
   */
  dashboardAnonymousSockets: number;
  /**
   * Dashboard sockets still to send their `auth` the node holds open at once, every address
   * together: one more pushes out the one that has waited longest (`too_many_sockets`, close
   * 1013), so pages that send their token at once still get in. Each is closed within 10 s anyway,
   * and counts until its client answers the close (as many pushed out may be still closing; past
   * that, 429 `too_many_sockets`).
   */
  dashboardAuthPendingSockets: number;
  /**
   * Dashboard sockets still to send their `auth` one address (an IPv6 one by its /64) may hold
   * open at once (429 `key_concurrency_exceeded`).
   */
  dashboardAuthPendingSocketsPerAddress: number;
}

/**
 * The defaults. Why these values:
 * - 1 MiB of body holds the longest default prompt four times over (UTF-8, JSON escapes) and
 *   parses in a few milliseconds.
 * - 65,536 prompt characters are about 16k tokens of English, above the context of every model
 *   the node builds and of most small models; tokenising them takes ~25 ms with the
 *   `@huggingface/tokenizers` path and ~7 ms with the byte-level one, inside the 50 ms a
 *   request may hold the event loop.
 * - 1,024 chat messages (parts included) are far more turns than a context holds, and validate
 *   in a millisecond or two; a 1 MiB body of one-character messages holds 35,000 (~50 ms).
 * - 30 s of no reading is far beyond any live client's pause and short against a job slot's
 *   worth (minutes of other clients' work).
 * - 60 s for a body: the largest one (1 MiB) arrives within it at 140 kbit/s, the slowest
 *   mobile link a client is likely to use; a typical body (a few KiB) takes milliseconds.
 * - 30 s of drain lets a typical job (a few hundred tokens at tens of tokens a second) end with
 *   its receipt, and leaves the actors' own stop time within systemd's default 90 s before it
 *   kills the node; a manager that waits less (`docker stop`: 10 s) needs it lowered.
 * - `/metrics` open to `any`: Prometheus scrapes without credentials unless told to, and the
 *   README said "`/metrics` needs no key", so every scraper set up so would go blank on upgrade;
 *   the start line names the value, and a node serving the internet sets `local` or `key`.
 * - 4 concurrent jobs and 120 starts a minute per key: a key gets the node's default
 *   concurrency, but cannot fill its queue alone.
 * - 8 dashboard sockets, 60 opened and 60 state reads a minute per client: a few tabs with room to
 *   spare, a reload a second, and `cli.ts status` (one read) run in a loop once a second.
 * - 64 anonymous dashboard sockets: each is sent the snapshot every second (encoded once for all,
 *   a few tens of KiB), a few MiB a second at most, while a node serving a public page still
 *   has room for dozens of readers.
 * - 16 sockets waiting for their `auth`, 4 per address: such a socket is sent nothing, and an
 *   `auth` arrives within a round trip of its open. But Deno reads up to 64 MiB of a message before
 *   the node can refuse it over 4 KiB, and a socket that does not answer its close keeps reading
 *   (it counts until then, and up to 16 more pushed out count beside them): worst case
 *   (16 + 16) × 64 MiB = 2 GiB, which a 24 GB node survives (64 held 8 GiB); 4 per address is
 *   256 MiB, and a few pages of one NAT opening at once.
 */
export const EDGE_DEFAULTS: Readonly<EdgeConfig> = Object.freeze({
  maxRequestBytes: 1 << 20,
  maxPromptChars: 1 << 16,
  maxChatMessages: 1024,
  clientIdleTimeoutMs: 30_000,
  requestBodyTimeoutMs: 60_000,
  drainTimeoutMs: 30_000,
  allowedOrigins: [],
  allowedHosts: [],
  apiKeys: [],
  perKeyConcurrency: 4,
  perKeyRequestsPerMinute: 120,
  allowUnauthenticatedRemote: false,
  trustedProxies: [],
  trustedProxyHeader: DEFAULT_TRUSTED_PROXY_HEADER,
  metricsAccess: "any",
  dashboardSocketsPerClient: 8,
  dashboardSocketOpensPerMinute: 60,
  dashboardStateReadsPerMinute: 60,
  dashboardAnonymousSockets: 64,
  dashboardAuthPendingSockets: 16,
  dashboardAuthPendingSocketsPerAddress: 4,
});

/**
 * Largest bodies the node reads at once by default (`maxBufferedBodyBytes` absent): a body
 * arrives in milliseconds unless its client stalls, so 32 is room for a crowd of ordinary
 * clients, while 32 stalled ones hold 32 MiB at the default size rather than without bound
 * (the same number as the uploads under way, `too_many_uploads`).
 */
export const BUFFERED_BODIES = 32;

/**
 * The bytes request bodies being read may hold at once under `edge`: its
 * `maxBufferedBodyBytes`, by default {@link BUFFERED_BODIES} × `maxRequestBytes`, and never less
 * than one largest body (which would otherwise be refused forever, with a `Retry-After`).
 *
 * @example
 * ```ts
 * import { bufferedBodyBytesOf, edgeConfig } from "./edge_config.ts";
 * bufferedBodyBytesOf(edgeConfig({ maxRequestBytes: 4096 })); // 131072
 * ```
 */
export function bufferedBodyBytesOf(edge: EdgeConfig): number {
  return Math.max(
    edge.maxBufferedBodyBytes ?? BUFFERED_BODIES * edge.maxRequestBytes,
    edge.maxRequestBytes,
  );
}

/** An origin as browsers send it: scheme, host and optional port, nothing else. */
const ORIGIN = /^https?:\/\/[^/\s?#]+$/;

/** The zod fields of {@link EdgeConfig}, with defaults; the node's configuration schema (`node/_config_schema.ts`) spreads them into `http`. */
export const edgeConfigFields = {
  maxRequestBytes: z.number().int().min(1024).max(1 << 30).default(EDGE_DEFAULTS.maxRequestBytes),
  maxBufferedBodyBytes: z.number().int().min(1024).max(2 ** 40).optional(),
  maxPromptChars: z.number().int().min(1).max(GENERATION_LIMITS.maxPromptChars)
    .default(EDGE_DEFAULTS.maxPromptChars),
  maxChatMessages: z.number().int().min(1).max(1_000_000).default(EDGE_DEFAULTS.maxChatMessages),
  clientIdleTimeoutMs: z.number().int().min(10).max(86_400_000)
    .default(EDGE_DEFAULTS.clientIdleTimeoutMs),
  requestBodyTimeoutMs: z.number().int().min(10).max(86_400_000)
    .default(EDGE_DEFAULTS.requestBodyTimeoutMs),
  drainTimeoutMs: z.number().int().min(0).max(86_400_000).default(EDGE_DEFAULTS.drainTimeoutMs),
  allowedOrigins: z.array(
    z.string().refine((o) => o === "*" || ORIGIN.test(o), 'expected "*" or SCHEME://HOST[:PORT]'),
  ).default([]),
  allowedHosts: z.array(z.string().min(1).regex(/^[^/\s?#@]+$/, "expected NAME or NAME:PORT"))
    .default([]),
  apiKeys: z.array(
    z.string().min(MIN_API_KEY_CHARS, `an API key needs at least ${MIN_API_KEY_CHARS} characters`)
      .regex(
        API_KEY_CHARS,
        "an API key is one word of visible ASCII characters, as a client sends it in " +
          "'Authorization: Bearer KEY' (generate one with: openssl rand -hex 24)",
      ),
  ).default([]),
  apiKeysFile: z.string().min(1).refine((path) => !startsAtShellHome(path), SHELL_HOME_REFUSAL)
    .optional(),
  perKeyConcurrency: z.number().int().min(1).max(100_000).default(EDGE_DEFAULTS.perKeyConcurrency),
  perKeyRequestsPerMinute: z.number().int().min(1).max(1_000_000)
    .default(EDGE_DEFAULTS.perKeyRequestsPerMinute),
  allowUnauthenticatedRemote: z.boolean().default(false),
  trustedProxies: z.array(
    z.string().refine(isTrustedProxyEntry, {
      error: (issue) => trustedProxyRefusal(String(issue.input)),
    }),
  ).default([]),
  trustedProxyHeader: z.enum(TRUSTED_PROXY_HEADERS).default(EDGE_DEFAULTS.trustedProxyHeader),
  metricsAccess: z.enum(METRICS_ACCESS).default(EDGE_DEFAULTS.metricsAccess),
  dashboardSocketsPerClient: z.number().int().min(1).max(100_000)
    .default(EDGE_DEFAULTS.dashboardSocketsPerClient),
  dashboardSocketOpensPerMinute: z.number().int().min(1).max(1_000_000)
    .default(EDGE_DEFAULTS.dashboardSocketOpensPerMinute),
  dashboardStateReadsPerMinute: z.number().int().min(1).max(1_000_000)
    .default(EDGE_DEFAULTS.dashboardStateReadsPerMinute),
  dashboardAnonymousSockets: z.number().int().min(1).max(100_000)
    .default(EDGE_DEFAULTS.dashboardAnonymousSockets),
  dashboardAuthPendingSockets: z.number().int().min(1).max(100_000)
    .default(EDGE_DEFAULTS.dashboardAuthPendingSockets),
  dashboardAuthPendingSocketsPerAddress: z.number().int().min(1).max(100_000)
    .default(EDGE_DEFAULTS.dashboardAuthPendingSocketsPerAddress),
};

/** {@link EdgeConfig} with the defaults filled in for the fields `partial` leaves out. */
export function edgeConfig(partial: Partial<EdgeConfig> = {}): EdgeConfig {
  const config: EdgeConfig = {
    ...EDGE_DEFAULTS,
    allowedOrigins: [],
    allowedHosts: [],
    apiKeys: [],
    trustedProxies: [],
  };
  for (const [key, value] of Object.entries(partial)) {
    if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
  }
  return config;
}
