/**
 * How many reads of stored bytes the node serves at once: the gateway's (`GET /ipfs/…`,
 * `/share/…`) and `GET /v1/files/{cid}`, together. A read holds its connection and, while its
 * client reads slowly or not at all, the store's read-ahead of its file (up to
 * `DEFAULT_FILE_CONCURRENCY` chunks: 5 to 6 MiB of RSS each, measured; 200 reads of one client
 * that stopped reading held 1 GiB, `tmp/s75/gwreads/`). So:
 *
 * - each client (`reader_identity.ts`: an API key, this machine, or an address) may have
 *   {@link MAX_OPEN_READS_PER_CLIENT} under way; a read past that waits, up to
 *   {@link READ_WAIT_MS}, for one of its own client's reads to end and takes its slot, at most
 *   {@link MAX_READ_WAITERS_PER_CLIENT} of a client waiting (review verify_limits, F3: a page of
 *   40 images through an HTTP/2 proxy had 24 refused at once though each read ended in
 *   milliseconds); a waiting read whose request is cancelled leaves the queue at once (review
 *   vreads2, F3: 112 cancelled ones refused their client's next read for 30 s). Only a client
 *   with all its reads under way waits, so at most `maxReads / maxReadsPerClient` clients (4)
 *   have reads waiting, 4 × 112 = 448 on the node at most: no node-wide bound of its own;
 * - the node has {@link MAX_OPEN_READS}; the reads of clients without a key (named by address)
 *   together hold at most {@link ANONYMOUS_READS_SHARE} of them, the rest kept for API keys and
 *   this machine's tools (behind a trusted proxy on this machine, what the proxy forwards counts
 *   as the client it names, keyless, not as this machine); and within each of those pools the
 *   reads of clients already reading one hold at most `BUSY_BODIES_SHARE` of it (the request body
 *   budget's rule), the rest kept for a client's first read. A keyless address that closed a read
 *   early or lost one to the idle cut holds no first read's room for {@link READ_COOLDOWN_MS}: all
 *   its reads, its next first one included, count as busy (review vreads2, F2: 12 addresses
 *   reopening each read just before its cut refused 99% of newcomers). So readers that stall, from
 *   however many addresses, cannot refuse a key holder; a newcomer without a key is refused only
 *   while stalled readers hold first reads from 12 or more addresses (48 − 36 kept) that have not
 *   closed or lost one for a minute, each until its read is cut (within `READ_IDLE_TIMEOUT_MS` of
 *   stalling, once it is wanted) and its address cools down: refusing newcomers all along takes
 *   fresh addresses at each turn, which the /64 rule below does not bound (review verify_limits,
 *   F1: four /64s holding 16 reads each refused everyone, key holders included);
 * - a read whose client took nothing for `READ_IDLE_TIMEOUT_MS` is cut and gives its slot back
 *   when that slot is wanted: a read of its own client waits, or a read of its pool would be
 *   refused (`read_slot_body.ts`: an honest slow reader is pulled from only every few minutes).
 *
 * Past these a read is refused, 429 `too_many_reads` with `Retry-After`, its message naming the
 * limit. A read holds its slot from when its request is routed until its response body has been
 * sent whole, has failed, was cancelled (the client went away) or was cut for idleness; an answer
 * without a body (a `HEAD`, a 304, a redirect) or an error gives it back at once.
 *
 * A client without a key is its address as the rest of the HTTP edge counts it (an IPv6 one by
 * its /64: `client_address.ts`), as the queue's turns, the per-address job limits and the body
 * budget's shares do, not by the peer layer's /48 blocks. What a /48's many /64s could take is
 * bounded instead by the keyless clients' share, which no number of addresses gets past, and by
 * the idle cut-off, which frees what stalled readers hold within a minute.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { BUSY_BODIES_SHARE } from "./body_limit.ts";
import type { EdgeEnv } from "./client_access.ts";
import type { ClientIdentity } from "./client_identity.ts";
import { EdgeError } from "./http_errors.ts";
import { queueClient } from "./inference_gateway.ts";
import { type ReadIdle, slotHeldBody } from "./read_slot_body.ts";
import type { EdgeStats } from "./edge_stats.ts";
import { type ReaderAccess, readerOf } from "./reader_identity.ts";
import type { DrainTimers } from "./serve.ts";

/**
 * Most reads under way at once on the whole node. A read whose client stops reading holds about
 * 5 to 6 MiB (its store read-ahead and socket buffers, measured) and a descriptor: 64 of them hold
 * about 400 MiB at worst, a node's spare memory beside its model, while 64 viewers of a video
 * (each keeps a read open as its player buffers) or a few pages of images at once still fit.
 */
export const MAX_OPEN_READS = 64;

/**
 * Most reads one client may have under way at once: a quarter of the node's (as uploads), so one
 * client that opens reads and does not read them cannot take every slot, while a browser's six
 * connections to a host, or a few users behind one NAT, still fit. More at once (a browser's
 * HTTP/2 page behind a proxy) wait their turn ({@link READ_WAIT_MS}) rather than being refused.
 */
export const MAX_OPEN_READS_PER_CLIENT = 16;

/**
 * Share of the node's reads the clients without a key (each named by its address) may hold
 * together: the rest is kept for API keys and this machine's tools, so anonymous readers, from as
 * many addresses as they like (a /48 holds 65,536 /64s), cannot refuse a key holder (review
 * verify_limits, F1: 64 stalled reads from four /64s refused a valid key). Three quarters, as the
 * request body budget keeps a quarter (`BUSY_BODIES_SHARE`): 48 of 64 still serve many viewers.
 */
export const ANONYMOUS_READS_SHARE = 3 / 4;

/**
 * Longest a read past its client's {@link MAX_OPEN_READS_PER_CLIENT} waits for one of that
 * client's reads to end before it is refused: 30 s. A client's reads share its link, so with 16
 * of them at once the first ends after 16 times one read's time: 16 images of 300 KiB over a
 * 2 Mbit/s link (a slow mobile page) take 16 × 300 KiB × 8 / 2 Mbit/s ≈ 20 s. A client none of
 * whose 16 reads ended in 30 s is stalled (its reads are cut at `READ_IDLE_TIMEOUT_MS`), and
 * what its waiting reads hold is only their connections: no store read starts before a slot.
 */
export const READ_WAIT_MS = 30_000;

/**
 * Most reads of one client that may wait at once: 112, so that with its 16 under way a client has
 * 128 at once, nginx's default `http2_max_concurrent_streams` (a browser's page sent upstream
 * through it never has more), while a client cannot park thousands of waiting requests.
 */
export const MAX_READ_WAITERS_PER_CLIENT = 112;

/**
 * How long a keyless address that closed a read early, or lost one to the idle cut, holds no room
 * kept for first reads (all its reads, its next first one included, count as a busy client's):
 * one idle time, 60 s. An address that keeps its place by closing each stalled read before the
 * cut and reopening it then competes with the busy readers instead of holding the newcomers' room
 * (review vreads2, F2), while an honest user who left a page and opens another is still served
 * unless the busy share is full too.
 */
export const READ_COOLDOWN_MS = 60_000;

/**
 * `Retry-After` of a refusal: 5 s. A read that is read ends within seconds, and a read held by a
 * client that stopped reading is cut within `READ_IDLE_TIMEOUT_MS` (60 s): a client told 5 s asks
 * twelve times in that minute, not sixty (with 1 s it polled every second for as long as stalled
 * readers held the slots), and a crowd of ordinary readers is through well within it.
 */
export const READ_RETRY_AFTER_S = 5;

/** Options of {@link ReadSlots}. */
export interface ReadSlotsOptions extends ReaderAccess {
  /** Most reads under way on the node; default {@link MAX_OPEN_READS}. */
  maxReads?: number;
  /** Most reads one client may have under way; default {@link MAX_OPEN_READS_PER_CLIENT}. */
  maxReadsPerClient?: number;
  /** Longest a read past its client's limit waits; default {@link READ_WAIT_MS}. */
  waitMs?: number;
  /** Most reads of one client waiting; default {@link MAX_READ_WAITERS_PER_CLIENT}. */
  maxWaitersPerClient?: number;
  /** Longest a read's client may take nothing (`READ_IDLE_TIMEOUT_MS` by default). */
  idleTimeoutMs?: number;
  /** The timers of the waits and the idle cut-off; default the global ones. */
  timers?: DrainTimers;
  /** The clock of the cooldown ({@link READ_COOLDOWN_MS}), in ms; default `Date.now`. */
  now?: () => number;
  /** The edge's counters, which count each read cut for idleness; default none. */
  stats?: EdgeStats;
  /** The node's log, which tells each read cut for idleness in one line; default none. */
  log?: (line: string) => void;
}

/** A read waiting for a slot of its own client. */
interface Waiter {
  grant: (release: Release) => void;
  timer: unknown;
}

/** Gives a slot back; `early` when its client ended the read itself or was cut for idleness. */
export type Release = (early?: boolean) => void;

/** A read whose client took nothing for the idle time: cut when its slot is wanted. */
interface Overdue {
  id: string;
  anonymous: boolean;
  cut: () => void;
}

/**
 * The read slots of one node: share one instance between the gateway and the file routes, so a
 * client's reads on both count together.
 *
 * @example
 * ```ts
 * import { ReadSlots } from "./read_slots.ts";
 * const slots = new ReadSlots({ maxReads: 2 });
 * const release = await slots.take({ label: "loopback" });
 * slots.open; // 1
 * release();
 * ```
 */
export class ReadSlots {
  readonly #maxReads: number;
  readonly #maxPerClient: number;
  readonly #maxAnonymous: number;
  readonly #waitMs: number;
  readonly #maxWaitersPerClient: number;
  readonly #timers: DrainTimers;
  readonly #now: () => number;
  readonly #idle: ReadIdle;
  readonly #access: ReaderAccess;
  #open = 0;
  /**
   * Reads under way of clients without a key, how many such clients have one, and how many of
   * those are cooling down (all their reads count as busy: they hold no first read's room).
   */
  #anonymousOpen = 0;
  #anonymousClients = 0;
  #coolingClients = 0;
  /** Keyless clients cooling down, with when they stop; oldest first (one fixed cooldown). */
  readonly #cooling = new Map<string, number>();
  /** Reads whose clients took nothing for the idle time, longest first. */
  readonly #overdue = new Set<Overdue>();
  /** Reads under way per client; a client is dropped when its last read ends. */
  readonly #byClient = new Map<string, number>();
  /** Reads waiting per client, oldest first; a client is dropped when its last one leaves. */
  readonly #waiting = new Map<string, Waiter[]>();
  #waiters = 0;

  /**
   * Create it.
   *
   * @param options The limits, the timers, and the access rules readers are named by.
   */
  constructor(options: ReadSlotsOptions = {}) {
    this.#maxReads = options.maxReads ?? MAX_OPEN_READS;
    this.#maxPerClient = options.maxReadsPerClient ?? MAX_OPEN_READS_PER_CLIENT;
    this.#maxAnonymous = share(this.#maxReads, ANONYMOUS_READS_SHARE);
    this.#waitMs = options.waitMs ?? READ_WAIT_MS;
    this.#maxWaitersPerClient = options.maxWaitersPerClient ?? MAX_READ_WAITERS_PER_CLIENT;
    this.#timers = options.timers ?? SYSTEM_TIMERS;
    this.#now = options.now ?? Date.now;
    this.#idle = {
      timeoutMs: options.idleTimeoutMs,
      timers: this.#timers,
      stats: options.stats,
      log: options.log,
    };
    this.#access = { keys: options.keys, trustedProxies: options.trustedProxies };
  }

  /** Reads under way on the node now. */
  get open(): number {
    return this.#open;
  }

  /** How many clients have reads under way now. */
  get clients(): number {
    return this.#byClient.size;
  }

  /** Reads waiting for a slot of their own client now. */
  get waiting(): number {
    return this.#waiters;
  }

  /** The client a read of `c` comes from, as these slots name it (`reader_identity.ts`). */
  reader(c: Context<EdgeEnv>): ClientIdentity {
    return readerOf(c, this.#access);
  }

  /**
   * Take a slot for one read of `client`: at once, or, past its per-client limit, once one of its
   * reads ends (within the wait, or until `signal` aborts); else 429 `too_many_reads` naming the
   * limit it met. A read of the client's, or of the pool it draws on, whose client took nothing
   * for the idle time is cut first to make room. Call the result once the read has ended, with
   * `true` if its client ended it early (a second call does nothing).
   */
  take(client: ClientIdentity, signal?: AbortSignal): Promise<Release> {
    try {
      return this.#take(client, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #take(client: ClientIdentity, signal?: AbortSignal): Promise<Release> {
    this.#expire();
    const id = queueClient(client);
    let mine = this.#byClient.get(id) ?? 0;
    if (mine >= this.#maxPerClient && this.#reclaim((read) => read.id === id)) {
      mine = this.#byClient.get(id) ?? 0;
    }
    if (mine >= this.#maxPerClient) return this.#wait(id, client, signal);
    const anonymous = isAnonymous(client);
    for (;;) {
      const lack = this.#lack(id, anonymous, mine);
      if (lack === undefined) break;
      if (!this.#reclaim(lack.helps)) throw refusal(lack.message);
      mine = this.#byClient.get(id) ?? 0;
    }
    this.#open++;
    this.#byClient.set(id, mine + 1);
    if (anonymous) {
      this.#anonymousOpen++;
      if (mine === 0) this.#anonymousClients++;
      if (mine === 0 && this.#cooling.has(id)) this.#coolingClients++;
    }
    return Promise.resolve(this.#releaser(id, anonymous));
  }

  /** Cut the longest overdue read that `helps`; whether there was one. */
  #reclaim(helps: (read: Overdue) => boolean): boolean {
    for (const read of this.#overdue) {
      if (!helps(read)) continue;
      read.cut(); // gives its slot back (or to its client's oldest waiting read), and withdraws
      this.#overdue.delete(read);
      return true;
    }
    return false;
  }

  /** Put a read whose client took nothing for the idle time on the list; cut at once if wanted. */
  #markOverdue(read: Overdue): () => void {
    if (this.#waiting.has(read.id)) {
      read.cut();
      return () => {};
    }
    this.#overdue.add(read);
    return () => this.#overdue.delete(read);
  }

  /** End the cooldowns that are over (the map is kept oldest first). */
  #expire(): void {
    const now = this.#now();
    for (const [id, until] of this.#cooling) {
      if (until > now) break;
      this.#cooling.delete(id);
      if (this.#byClient.has(id)) this.#coolingClients--;
    }
  }

  /** Start (or restart) keyless client `id`'s cooldown ({@link READ_COOLDOWN_MS}). */
  #coolDown(id: string): void {
    if (!this.#cooling.delete(id) && this.#byClient.has(id)) this.#coolingClients++;
    this.#cooling.set(id, this.#now() + READ_COOLDOWN_MS);
  }

  /**
   * A route handler (placed before the read's own) that takes the request's slot, or refuses it,
   * and gives it back when the answer is over: see the module's text.
   */
  guard(): MiddlewareHandler<EdgeEnv> {
    return async (c, next) => {
      const client = readerOf(c, this.#access);
      const release = await this.take(client, c.req.raw.signal);
      try {
        await next();
      } catch (error) {
        release();
        throw error;
      }
      const res = c.res;
      // Hono answers a HEAD with its GET's headers and drops the body without cancelling it: the
      // slot cannot wait for that body's end. An error's body is a few bytes of JSON.
      if (c.req.method === "HEAD" || res.body === null || !res.ok) {
        release();
        return;
      }
      const read = { id: queueClient(client), anonymous: isAnonymous(client) };
      const overdue = (cut: () => void) => this.#markOverdue({ ...read, cut });
      const sized = res.headers.has("content-length");
      const idle = { ...this.#idle, overdue, sized, path: c.req.path };
      c.res = new Response(slotHeldBody(res.body, release, idle), res);
    };
  }

  /**
   * What the node's pools lack for a read of client `id` (holding `mine` already), if anything:
   * room in the node's whole, in the anonymous clients' share of it, or within the pool the
   * client draws on, in the share of clients already reading one (a cooling keyless client's
   * first read counts as one of theirs); with the refusal's message and which overdue reads,
   * cut, would make that room.
   */
  #lack(
    id: string,
    anonymous: boolean,
    mine: number,
  ): { message: string; helps: (read: Overdue) => boolean } | undefined {
    if (this.#open >= this.#maxReads) {
      return {
        message: `this node has ${this.#open} reads of stored files under way (/ipfs, /share, ` +
          `/v1/files), its node-wide limit of ${this.#maxReads}: retry after the Retry-After ` +
          "seconds",
        helps: () => true,
      };
    }
    if (anonymous && this.#anonymousOpen >= this.#maxAnonymous) {
      return {
        message: `clients without an API key have ${this.#anonymousOpen} reads of stored files ` +
          `under way on this node, their share of ${this.#maxAnonymous} of its ${this.#maxReads} ` +
          "(the rest is kept for API keys): retry after the Retry-After seconds, or send a key",
        helps: (read) => read.anonymous,
      };
    }
    const cooling = anonymous && this.#cooling.has(id);
    if (mine === 0 && !cooling) return undefined;
    // As the body budget keeps the rest of its bytes for a client reading none, so a client's
    // first read finds room however many busy clients stall theirs.
    const pool = anonymous ? this.#maxAnonymous : this.#maxReads;
    const busy = anonymous
      ? this.#anonymousOpen - (this.#anonymousClients - this.#coolingClients)
      : this.#open - this.#byClient.size;
    const busyMax = share(pool, BUSY_BODIES_SHARE);
    if (busy < busyMax) return undefined;
    return {
      message: `clients already reading a stored file (or that just left or lost one) hold ` +
        `${busy} more reads on this node, their share of ${busyMax} (the rest is kept for a ` +
        "client's first read): finish reading one, or retry after the Retry-After seconds",
      // Only a busy read's cut makes room here: a client's only read held kept room.
      helps: (read) =>
        read.anonymous === anonymous &&
        ((this.#byClient.get(read.id) ?? 0) > 1 || this.#cooling.has(read.id)),
    };
  }

  /**
   * Wait, within the limits on waiting, for a slot of `id`'s own to be handed over; leave the
   * queue at once if `signal` aborts (the request was cancelled).
   */
  #wait(id: string, client: ClientIdentity, signal?: AbortSignal): Promise<Release> {
    const queue = this.#waiting.get(id) ?? [];
    if (queue.length >= this.#maxWaitersPerClient) {
      return Promise.reject(this.#clientRefusal(client, queue.length));
    }
    if (signal?.aborted) return Promise.reject(this.#gone(client));
    const { promise, resolve, reject } = Promise.withResolvers<Release>();
    const abandon = () => {
      this.#timers.clearTimeout(waiter.timer);
      this.#leave(id, waiter);
      reject(this.#gone(client));
    };
    const waiter: Waiter = {
      grant: (release) => {
        this.#timers.clearTimeout(waiter.timer);
        signal?.removeEventListener("abort", abandon);
        resolve(release);
      },
      timer: this.#timers.setTimeout(() => {
        signal?.removeEventListener("abort", abandon);
        this.#leave(id, waiter);
        reject(this.#clientRefusal(client, this.#waiting.get(id)?.length ?? 0));
      }, this.#waitMs),
    };
    signal?.addEventListener("abort", abandon, { once: true });
    queue.push(waiter);
    this.#waiting.set(id, queue);
    this.#waiters++;
    return promise;
  }

  /** The refusal of a waiting read whose request was cancelled: answered to nobody. */
  #gone(client: ClientIdentity): EdgeError {
    return refusal(
      `this client (${client.label}) went away while its read waited for one of its reads ` +
        "under way to end",
    );
  }

  /** Take `waiter` out of `id`'s queue. */
  #leave(id: string, waiter: Waiter): void {
    const queue = this.#waiting.get(id);
    const at = queue?.indexOf(waiter) ?? -1;
    if (queue === undefined || at < 0) return;
    queue.splice(at, 1);
    this.#waiters--;
    if (queue.length === 0) this.#waiting.delete(id);
  }

  /** The per-client refusal of `client`, with `waiting` of its reads waiting. */
  #clientRefusal(client: ClientIdentity, waiting: number): EdgeError {
    const mine = this.#byClient.get(queueClient(client)) ?? 0;
    return refusal(
      `this client (${client.label}) already has ${mine} reads of stored files under way ` +
        `(/ipfs, /share, /v1/files), its per-client limit of ${this.#maxPerClient}, and ` +
        `${waiting} waiting (at most ${this.#maxWaitersPerClient}, for up to ` +
        `${this.#waitMs / 1000} s): finish reading one, or retry after the Retry-After seconds`,
    );
  }

  /**
   * The release of one slot of `id`: handed to the oldest read of `id` waiting, if any (the
   * counts stay as they are: the slot changes hands), else given back.
   */
  #releaser(id: string, anonymous: boolean): Release {
    let released = false;
    return (early = false) => {
      if (released) return;
      released = true;
      this.#expire();
      if (early && anonymous) this.#coolDown(id);
      const next = this.#waiting.get(id)?.[0];
      if (next !== undefined) {
        this.#leave(id, next);
        next.grant(this.#releaser(id, anonymous));
        return;
      }
      this.#open--;
      if (anonymous) this.#anonymousOpen--;
      const left = (this.#byClient.get(id) ?? 1) - 1;
      if (left > 0) {
        this.#byClient.set(id, left);
        return;
      }
      this.#byClient.delete(id);
      if (!anonymous) return;
      this.#anonymousClients--;
      if (this.#cooling.has(id)) this.#coolingClients--;
    };
  }
}

/** A client named by its address, with no key and not this machine. */
function isAnonymous(client: ClientIdentity): boolean {
  return client.keyId === undefined && client.address !== undefined;
}

/** `fraction` of `total` slots, never none (a node configured with a handful still serves). */
function share(total: number, fraction: number): number {
  return Math.max(1, Math.floor(total * fraction));
}

/** A 429 `too_many_reads` saying `message`. */
function refusal(message: string): EdgeError {
  return new EdgeError("too_many_reads", message, { retryAfterS: READ_RETRY_AFTER_S });
}
