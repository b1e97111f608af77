/**
 * The node's last line against a WebSocket client that fills its memory, which Deno 2.9 cannot
 * bound: a fragmented message has no size limit (64 MiB is Deno's limit per frame, not per message;
 * denoland/deno#15809), and the node's own `http.maxRequestBytes` check runs only once Deno has
 * read the whole message. One client pushed 256 MiB into a node in 1.5 s (RSS 181 → 696 MiB), and
 * a 512 MiB text message killed the node (`tmp/s76/wsfix/report.md`; that one is now contained by
 * `websocket_text_overflow.ts`).
 *
 * Every `/v1/stream` and dashboard socket is tracked here from its upgrade to its `onclose`. While
 * any is, the process's RSS is read every {@link MEMORY_CHECK_MS}; over the limit
 * (`server.wsMemoryLimitBytes`, default {@link defaultWebSocketMemoryLimitBytes}) the sockets
 * running no job are dropped at once (`dropWebSocket`: the partial message is freed in the
 * same turn; the close frame sent first, 1013, is cut with the socket, so the client sees the
 * connection end, 1006: the node does not wait for a client while its memory runs out), every
 * group in the same check, in the order sockets still to send their `auth`, then keyless ones,
 * then those with a key, oldest first within a group: one group per check let a keyed client
 * fill memory for a second more while a bystander was dropped (`tmp/s76/review_vws/report.md`,
 * F2), and an idle socket reconnects cheaply. A job only waiting in the queue is no job here: a
 * client could queue jobs to be kept while it sends (F1 there). One line is logged per check that
 * drops any.
 *
 * A socket running a job (`/v1/stream`: one holding a slot; the dashboard: the page's own prompt,
 * queued or running, which only the operator can send) is kept at the first check over the limit:
 * its client is being served, and dropping the idle ones may be enough. If the RSS is still over at the next check, the
 * sockets running a job are dropped too, all in that check: the guard cannot tell which socket
 * holds a growing message (Deno counts no socket's unread bytes, so "the largest" cannot be
 * measured), and one per check would leave the one that is growing a second per socket to grow.
 * Their `onclose` is the session's own end: their jobs are cancelled (a queued one leaves the
 * queue, a running one frees its slot) and a cancelled job earns no receipt.
 *
 * A socket whose writes are stuck (a client that reads nothing) is dropped too: its read stops, so
 * it holds no more than it has, though its connection and unsent bytes stay until the client goes.
 *
 * What stays unbounded: until the next check (the one after, for a socket that runs a job), a client can push
 * as much as its bandwidth allows into the node's memory; only Deno can bound a message
 * (denoland/deno#15809).
 *
 * @module
 */
import { totalmem } from "node:os";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { type DroppableSocket, dropWebSocket } from "./websocket_drop.ts";

/**
 * How often the RSS is read while any WebSocket is open. A fragmenting client on loopback pushed
 * 170–200 MiB/s into the node (measured, step A of `tmp/s76/wsfix/report.md`), so a check a
 * second overshoots the limit by at most a few hundred MiB per such client; reading the RSS costs a
 * few microseconds, so checking more often would buy little and cost nothing worth saving either.
 */
export const MEMORY_CHECK_MS = 1_000;

/**
 * The default limit's share of the machine's memory. The node's own footprint is its model copies
 * and runtime (about 180 MiB with the built-in model; a few GiB for a large exported model), far
 * below half of any machine it is meant for; past half, something is filling it, and the other
 * half is still there for the OS, its page cache and the node's jobs while the guard acts — where
 * the kernel's OOM killer at the end of memory would kill the whole node, every job with it. An
 * operator whose model itself needs more sets `server.wsMemoryLimitBytes`.
 */
export const DEFAULT_MEMORY_LIMIT_SHARE = 0.5;

/** WebSocket close code "Try Again Later" (RFC 6455 registry): the node is short of memory. */
const CLOSE_TRY_AGAIN_LATER = 1013;

/** How expendable a socket is: the guard drops the first group first. */
export type GuardedSocketGroup =
  /** A dashboard socket still to send its `auth`: nobody the node knows. */
  | "pre_auth"
  /** A socket without a key (this machine's tools, an anonymous dashboard reader). */
  | "keyless"
  /** A socket whose client gave an API key or the operator token. */
  | "keyed";

/** The order the groups are dropped in, all in one check. */
const GROUP_ORDER: readonly GuardedSocketGroup[] = ["pre_auth", "keyless", "keyed"];

/** What the guard says about each group in its log line. */
const GROUP_WORDS: Record<GuardedSocketGroup, string> = {
  pre_auth: "waiting for their auth",
  keyless: "without a key",
  keyed: "with a key",
};

/** One tracked socket's handle ({@link WebSocketMemoryGuard.track}). */
export interface GuardedSocket {
  /** The socket's group changed (a dashboard page sent its key). */
  regroup(group: GuardedSocketGroup): void;
  /** The socket has closed (its `onclose`): forget it. Idempotent. */
  untrack(): void;
}

/** Options of {@link WebSocketMemoryGuard}. */
export interface WebSocketMemoryGuardOptions {
  /**
   * RSS in bytes past which idle sockets are dropped, and those running a job at the next check
   * still over; default {@link defaultWebSocketMemoryLimitBytes}.
   */
  limitBytes?: number;
  /** Reads the process's RSS in bytes; default `Deno.memoryUsage().rss`. */
  rss?: () => number;
  /** The clock of the checks; default the system's. */
  timers?: Pick<ConnectionTimers, "setTimeout" | "clearTimeout">;
  /** Between two checks; default {@link MEMORY_CHECK_MS}. */
  checkEveryMs?: number;
  /** Where the line of each check that drops sockets goes; default `console.warn`. */
  log?: (line: string) => void;
}

interface Tracked {
  socket: DroppableSocket;
  group: GuardedSocketGroup;
  busy: () => boolean;
}

/** {@link DEFAULT_MEMORY_LIMIT_SHARE} of this machine's memory, in bytes. */
export function defaultWebSocketMemoryLimitBytes(): number {
  return Math.floor(totalmem() * DEFAULT_MEMORY_LIMIT_SHARE);
}

/**
 * Drops idle WebSockets when the process's memory passes a limit, and those running a job when it
 * stays past it: see the module's text.
 *
 * @example
 * ```ts ignore
 * const guard = new WebSocketMemoryGuard({ limitBytes: 8 << 30, log: console.log });
 * const tracked = guard.track(socket, "keyless", () => session.running > 0);
 * socket.addEventListener("close", () => tracked.untrack());
 * ```
 */
export class WebSocketMemoryGuard {
  readonly #limitBytes: number;
  readonly #rss: () => number;
  readonly #timers: Pick<ConnectionTimers, "setTimeout" | "clearTimeout">;
  readonly #checkEveryMs: number;
  readonly #log: (line: string) => void;
  /** Oldest first (a `Set` keeps insertion order). */
  readonly #tracked = new Set<Tracked>();
  #timer: unknown;
  /** Whether the previous check found the RSS over the limit: the next one over drops busy ones. */
  #wasOver = false;

  /**
   * Create it; it reads nothing until a socket is tracked.
   *
   * @param options The limit, the RSS probe, the clock and the log.
   */
  constructor(options: WebSocketMemoryGuardOptions = {}) {
    this.#limitBytes = options.limitBytes ?? defaultWebSocketMemoryLimitBytes();
    this.#rss = options.rss ?? (() => Deno.memoryUsage().rss);
    this.#timers = options.timers ?? SYSTEM_TIMERS;
    this.#checkEveryMs = options.checkEveryMs ?? MEMORY_CHECK_MS;
    this.#log = options.log ?? console.warn;
  }

  /** The RSS in bytes past which idle sockets are dropped. */
  get limitBytes(): number {
    return this.#limitBytes;
  }

  /**
   * Track `socket` from its upgrade until its `onclose` (call `untrack` there). `busy` says whether
   * it runs a job now, one that holds a slot, not one only queued (such a socket is kept at the
   * first check over the limit).
   */
  track(socket: DroppableSocket, group: GuardedSocketGroup, busy: () => boolean): GuardedSocket {
    const entry: Tracked = { socket, group, busy };
    this.#tracked.add(entry);
    this.#arm();
    return {
      regroup: (next) => entry.group = next,
      untrack: () => {
        this.#tracked.delete(entry);
        if (this.#tracked.size > 0) return;
        // No socket, nothing to check: no timer keeps a stopping node (or a test) alive.
        this.#timers.clearTimeout(this.#timer);
        this.#timer = undefined;
        // The next check is not "the next" of this one: a later socket's job gets its first check.
        this.#wasOver = false;
      },
    };
  }

  /**
   * Read the RSS once and, over the limit, drop every idle socket; when the previous check was
   * over the limit too, the sockets running a job as well. The timer calls it; a test may too.
   *
   * @returns How many sockets were dropped.
   */
  check(): number {
    const rss = this.#rss();
    const wasOver = this.#wasOver;
    this.#wasOver = rss > this.#limitBytes;
    if (!this.#wasOver) return 0;
    const idle = [...this.#tracked].filter((t) => !t.busy());
    const busy = [...this.#tracked].filter((t) => !idle.includes(t));
    const over = `memory guard: RSS ${mib(rss)} MiB is over server.wsMemoryLimitBytes (${
      mib(this.#limitBytes)
    } MiB): dropped`;
    let dropped = 0;
    if (idle.length > 0) {
      const counts: string[] = [];
      for (const group of GROUP_ORDER) {
        const victims = idle.filter((t) => t.group === group);
        if (victims.length === 0) continue;
        for (const victim of victims) this.#drop(victim);
        counts.push(`${victims.length} ${GROUP_WORDS[group]}`);
      }
      dropped += idle.length;
      this.#log(
        `${over} ${idle.length} WebSocket(s) running no job (${counts.join(", ")}; a fragmented ` +
          `message grows without bound in Deno); kept ${wasOver ? 0 : busy.length} running a job`,
      );
    }
    if (wasOver && busy.length > 0) {
      for (const victim of busy) this.#drop(victim);
      dropped += busy.length;
      this.#log(
        `${over} ${busy.length} WebSocket(s) running a job, their jobs cancelled (over the limit ` +
          `at two checks in a row)`,
      );
    }
    return dropped;
  }

  /** Close and drop one socket, and forget it. */
  #drop(victim: Tracked): void {
    // The close makes it `CLOSING`, which the drop needs; one the node closed already is too.
    if (victim.socket.readyState === WebSocket.OPEN) {
      victim.socket.close(CLOSE_TRY_AGAIN_LATER, "the node is short of memory: retry later");
    }
    dropWebSocket(victim.socket, this.#timers);
    this.#tracked.delete(victim);
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.check();
      if (this.#tracked.size > 0) this.#arm();
    }, this.#checkEveryMs);
  }
}

function mib(bytes: number): number {
  return Math.round(bytes / (1 << 20));
}
