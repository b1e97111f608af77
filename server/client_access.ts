/**
 * Who may use the inference API (`/v1/*`). With API keys configured every client needs one
 * (`Authorization: Bearer KEY`, as OpenAI clients send it). Without keys the node serves only
 * clients on its own machine (a loopback peer address, relaying nobody, and no web page of another
 * origin: see {@link fromThisMachine}), whatever interface it listens on, unless the operator sets
 * `http.allowUnauthenticatedRemote`. The identity found here is on the request context as
 * `client`, for per-key limits and the job log. Behind a reverse proxy the operator trusts
 * (`http.trustedProxies`), a keyless client is the one the proxy names (`client_address.ts`),
 * each with its own queue turn and limits, and never this machine's.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { ApiKeys } from "./api_keys.ts";
import { anonymousClient, type ClientIdentity, LOOPBACK_CLIENT } from "./client_identity.ts";
import { clientAddress } from "./client_address.ts";
import { isWideTrustedProxyEntry, NO_TRUSTED_PROXIES, TrustedProxies } from "./trusted_proxies.ts";
import { DEFAULT_TRUSTED_PROXY_HEADER, type TrustedProxyHeader } from "./forwarded_for.ts";
import { hostIsAnAddress, namesAnAddress } from "./host_guard.ts";
import { EdgeError } from "./http_errors.ts";
import type { MetricsAccess } from "./metrics_access.ts";

/** Hono environment of the edge's routes: the serve info as bindings, the client as a variable. */
export interface EdgeEnv {
  /** What `Deno.serve` passes with a request (absent when the app is called directly). */
  Bindings: { remoteAddr?: Deno.Addr };
  /** Set by {@link clientAccess}. */
  Variables: { client: ClientIdentity };
}

/** Whether `addr` is this machine: 127.0.0.0/8, ::1, or IPv4 loopback mapped into IPv6. */
export function isLoopback(addr: Deno.Addr | undefined): boolean {
  if (addr === undefined || (addr.transport !== "tcp" && addr.transport !== "udp")) return false;
  const host = addr.hostname.toLowerCase();
  return host === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Headers a reverse proxy adds to name the client it relays: RFC 7239's `Forwarded`, and the
 * de-facto `X-Forwarded-For` and `X-Real-IP` (Caddy and Traefik send the first by default, nginx
 * setups one of them). A proxy cannot be told by its `Host` alone: one reached by its public
 * address keeps that address (an address, like this machine's own clients'), and nginx by
 * default sends the upstream's (`127.0.0.1:8080`).
 */
const FORWARDING_HEADERS = ["forwarded", "x-forwarded-for", "x-real-ip"] as const;

/**
 * Whether `origin` is the origin of a page this node served, going by the request's `Host`:
 * the same host and port, named by an address or `localhost`. A name proves nothing: a
 * DNS-rebinding page is served under the attacker's name, which then resolves to this node, so
 * its `Host` and `Origin` agree. An address or `localhost` cannot be rebound, and a browser
 * sends the `Host` it connected to, so a page elsewhere on this machine (another port) differs.
 * An absent, `null` or unparsable origin is not this node's.
 */
export function isOwnOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined || host === undefined) return false;
  const url = URL.parse(origin);
  if (url === null || url.origin !== origin) return false;
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (url.host !== host.toLowerCase()) return false;
  return namesAnAddress(url.hostname);
}

/**
 * Whether `request` is a web page's from another origin than the node's own ({@link isOwnOrigin};
 * `null` included): a browser sends `Origin` with every cross-origin request and WebSocket
 * handshake, and the operator's tools (`curl`, `cli.ts`) send none.
 */
export function fromOtherOrigin(request: Request): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return false;
  const host = request.headers.get("host") ?? URL.parse(request.url)?.host;
  return !isOwnOrigin(origin, host);
}

/**
 * Whether `request`, from the peer `addr`, is a client on this machine itself: a loopback peer
 * that names the node by an address or `localhost` (not a name a DNS-rebinding page uses),
 * relays nobody (no forwarding header: a reverse proxy on this machine is a loopback peer too,
 * but its clients are other machines') and is no page of another origin. Such a client is served
 * without a key; `/v1` and the dashboard decide it alike. A peer among the `trusted` proxies is
 * never this machine's client, whatever it sends: it relays other machines' clients, and one that
 * named nobody (a proxy set up without a forwarding header) would hand the operator's exemptions
 * to the internet. Nor is a page of another origin ({@link fromOtherOrigin}), whatever
 * `http.allowedOrigins` says: it comes from this machine's browser, but it is the page's author's
 * request, and with `*` any site the operator visits would read every client's job text and,
 * without keys, run jobs (review s78 dash, F1). Allowing an origin lets its pages in with what a
 * client elsewhere needs (an API key), never with this machine's exemptions.
 */
export function fromThisMachine(
  addr: Deno.Addr | undefined,
  request: Request,
  trusted: TrustedProxies = NO_TRUSTED_PROXIES,
): boolean {
  if (addr !== undefined && "hostname" in addr && trusted.has(addr.hostname)) return false;
  return isLoopback(addr) &&
    hostIsAnAddress(request.headers.get("host") ?? URL.parse(request.url)?.host) &&
    !FORWARDING_HEADERS.some((name) => request.headers.has(name)) &&
    !fromOtherOrigin(request);
}

/**
 * The middleware: identify the client or refuse it (401 without a valid key, 403 remote). A
 * keyless client relayed by one of the `trusted` proxies is the client the proxy names.
 */
export function clientAccess(
  keys: ApiKeys,
  allowUnauthenticatedRemote: boolean,
  trusted: TrustedProxies = NO_TRUSTED_PROXIES,
): MiddlewareHandler<EdgeEnv> {
  return async (c, next) => {
    let client: ClientIdentity;
    if (keys.size > 0) client = keys.identify(c.req.header("authorization"));
    // A reverse proxy on this machine relays other machines' clients, which without keys must
    // not be served as this machine's (the dashboard reads them so too).
    else if (fromThisMachine(c.env?.remoteAddr, c.req.raw, trusted)) client = LOOPBACK_CLIENT;
    else if (allowUnauthenticatedRemote) {
      client = anonymousClient(clientAddress(c.env?.remoteAddr, c.req.raw, trusted));
    } else {
      const peer = c.env?.remoteAddr;
      // The operator's own tool, refused because its address is a trusted proxy's, is told so.
      const asProxy = peer !== undefined && "hostname" in peer && trusted.has(peer.hostname)
        ? `; ${peer.hostname} is a trusted proxy's address (http.trustedProxies), never this ` +
          "machine's client"
        // A page of an allowed origin on this machine is told why it is not served as its tools.
        : fromOtherOrigin(c.req.raw)
        ? `; a web page from ${c.req.header("origin")} is never this machine's client, even ` +
          "one allowed by http.allowedOrigins"
        : "";
      throw new EdgeError(
        "api_key_required",
        "this node has no API keys and serves clients on its own machine only (named by an " +
          `address or localhost, not through a proxy${asProxy}); its operator ` +
          "can add keys (--api-key, http.apiKeysFile) or serve anyone without one " +
          "(http.allowUnauthenticatedRemote)",
      );
    }
    c.set("client", client);
    await next();
  };
}

/** What {@link describeAccess} and {@link accessWarnings} read of the `http` configuration. */
export interface AccessConfig {
  apiKeys: readonly string[];
  apiKeysFile?: string;
  allowUnauthenticatedRemote: boolean;
  allowedOrigins: readonly string[];
  trustedProxies?: readonly string[];
  trustedProxyHeader?: TrustedProxyHeader;
  /** Who may read `/metrics`; `any` when absent, as `EDGE_DEFAULTS` has it. */
  metricsAccess?: MetricsAccess;
}

/** The addresses this machine's own tools connect from (`localhost` is one or the other). */
const LOCAL_TOOL_ADDRESSES = ["127.0.0.1", "::1"] as const;

/**
 * Which of {@link LOCAL_TOOL_ADDRESSES} `config`'s trusted proxies cover: clients connecting from
 * there are never this machine's (`fromThisMachine`), so without keys they lose its exemptions.
 */
function trustedLocalAddresses(config: AccessConfig): string[] {
  const trusted = TrustedProxies.from(config.trustedProxies ?? []);
  return LOCAL_TOOL_ADDRESSES.filter((address) => trusted.has(address));
}

/** A one-line description of who may use the API, for the node's start-up output. */
export function describeAccess(config: AccessConfig): string {
  const keys = ApiKeys.fromConfig(config);
  const lockedOut = trustedLocalAddresses(config);
  const except = lockedOut.length === 0
    ? ""
    : `, except those connecting from ${lockedOut.join(" or ")}, a trusted proxy's address ` +
      "(see the warning)";
  const who = keys.size > 0
    ? `${keys.size} API key${keys.size === 1 ? "" : "s"}: every client needs one`
    : config.allowUnauthenticatedRemote
    ? "no API keys, open to anyone who can reach it (http.allowUnauthenticatedRemote)"
    : `no API keys: serving clients on this machine only${except} (add --api-key or ` +
      "http.apiKeysFile to serve others)";
  const origins = config.allowedOrigins.length === 0
    ? "no browser origins allowed (--allow-origin)"
    : `browser origins ${config.allowedOrigins.join(" ")}`;
  // Said at start: a proxy listed by mistake would name anyone it liked as the client.
  const proxies = (config.trustedProxies ?? []).length === 0
    ? ""
    : `; clients named by the proxies at ${config.trustedProxies!.join(" ")} in their ` +
      `${headerName(config)} (http.trustedProxies, http.trustedProxyHeader)`;
  return `API access      ${who}; ${origins}${proxies}; ${metricsReaders(config)}`;
}

/** Who reads `/metrics`, said at start: the one route besides `/healthz` open by default. */
function metricsReaders(config: AccessConfig): string {
  switch (config.metricsAccess ?? "any") {
    case "any":
      return "/metrics open to anyone who reaches the port (http.metricsAccess any)";
    case "local":
      return "/metrics to this machine, an API key or the operator token (http.metricsAccess local)";
    case "key":
      return "/metrics to an API key or the operator token only (http.metricsAccess key)";
  }
}

/** The forwarding header `config`'s proxies write, as its documentation spells it. */
function headerName(config: AccessConfig): string {
  return (config.trustedProxyHeader ?? DEFAULT_TRUSTED_PROXY_HEADER) === "forwarded"
    ? "Forwarded"
    : "X-Forwarded-For";
}

/**
 * The warning lines the node prints at start for a trusted-proxy setup that works against its
 * operator (review s74 verify1, F3): a trusted range covering the address this machine's own
 * tools connect from, on a node without keys (they are refused, or served as an anonymous
 * client, since a trusted proxy is never this machine); and a range wider than the private ones
 * (`0.0.0.0/0`), whose every address names itself whatever client it likes.
 */
export function accessWarnings(config: AccessConfig): string[] {
  const warnings: string[] = [];
  const lockedOut = trustedLocalAddresses(config);
  if (lockedOut.length > 0 && ApiKeys.fromConfig(config).size === 0) {
    const fate = config.allowUnauthenticatedRemote
      ? "are served as one anonymous client, with its limits, not as this machine"
      : "are refused (/v1: 403 api_key_required; the dashboard: 401 without the operator token)";
    warnings.push(
      `warning: http.trustedProxies covers ${lockedOut.join(" and ")}, where this machine's own ` +
        `tools (cli.ts infer, curl, a browser) connect from: a trusted proxy is never this ` +
        `machine, so without API keys they ${fate}; bind the proxy to another loopback address ` +
        "and trust only that (nginx: proxy_bind 127.0.0.2; --trust-proxy 127.0.0.2), or add " +
        "API keys (--api-key), or use the operator token",
    );
  }
  const originsWarning = anyOriginWarning(config);
  if (originsWarning !== undefined) warnings.push(originsWarning);
  const wide = (config.trustedProxies ?? []).filter(isWideTrustedProxyEntry);
  if (wide.length > 0) {
    warnings.push(
      `warning: http.trustedProxies ${wide.join(" ")} covers addresses of the open internet: ` +
        `any client that reaches the node directly from one names itself in ` +
        `${headerName(config)} as whatever client it likes (per-client limits, queue turns); ` +
        "list only your proxies' addresses unless nothing but them can reach the node",
    );
  }
  return warnings;
}

/**
 * The warning for `--allow-origin '*'` on a node without API keys (review s78 dash, F1): every
 * site the operator's browser visits may then use the node through that browser. Its pages are
 * never this machine's clients (`fromThisMachine`), so they cannot read job text or use this
 * machine's keyless access; but they read what needs no key (`/metrics` when
 * `http.metricsAccess` is `any`, `/healthz`, the gateway), and under
 * `http.allowUnauthenticatedRemote` they run jobs and store files, on a node that may be reachable
 * from nowhere but the operator's network. Warned, not refused: a node serving public pages with
 * no keys on purpose (`allowUnauthenticatedRemote`) is a choice, and without it `*` grants pages
 * nothing a key would not. With keys, `*` is the usual setup of a node serving browser clients.
 */
function anyOriginWarning(config: AccessConfig): string | undefined {
  if (!config.allowedOrigins.includes("*") || ApiKeys.fromConfig(config).size > 0) return undefined;
  const risk = config.allowUnauthenticatedRemote
    ? "run jobs, store files and read the dashboard on this node through your browser, as any " +
      "keyless client may (http.allowUnauthenticatedRemote), even where nothing else can reach it"
    : "read what needs no key through your browser (/healthz, the gateway, and /metrics unless " +
      "http.metricsAccess is local or key); their /v1 requests get 403, as they are never this " +
      "machine's clients";
  return `warning: --allow-origin '*' (http.allowedOrigins) without API keys: every web site ` +
    `your browser visits may ${risk}; list the origins you serve, or add API keys (--api-key)`;
}
