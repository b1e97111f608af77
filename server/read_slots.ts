/**
 * How many reads of stored bytes the node serves at once: the gateway's (`GET /ipfs/…`,
 * `/share/…`) and `GET /v1/files/{cid}`, together. A read holds its connection and, while its
 * client reads slowly or not at all, the store's read-ahead of its file (up to
 * `DEFAULT_FILE_CONCURRENCY` chunks: 5 to 6 MiB of RSS each, measured; 200 reads of one client
 * that stopped reading held 1 GiB, `tmp/s75/gwreads/`). So each client (`reader_identity.ts`: an
 * API key, this machine, or an address) may have {@link MAX_OPEN_READS_PER_CLIENT} under way and
 * the node {@link MAX_OPEN_READS}; past either the next is refused at once, 429 `too_many_reads`
 * with `Retry-After`, its message naming the limit. A read holds its slot from when its request
 * is routed until its response body has been sent whole, has failed, or was cancelled (the client
 * went away); an answer without a body (a `HEAD`, a 304, a redirect) or an error gives it back at
 * once.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { EdgeEnv } from "./client_access.ts";
import type { ClientIdentity } from "./client_identity.ts";
import { EdgeError } from "./http_errors.ts";
import { queueClient } from "./inference_gateway.ts";
import { type ReaderAccess, readerOf } from "./reader_identity.ts";

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
 * connections to a host, or a few users behind one NAT, still fit.
 */
export const MAX_OPEN_READS_PER_CLIENT = 16;

/**
 * `Retry-After` of a refusal: a read that is read ends within moments, and one second lets a
 * crowd of them through without a client giving up (as `too_many_uploads`).
 */
const RETRY_AFTER_S = 1;

/** Options of {@link ReadSlots}. */
export interface ReadSlotsOptions extends ReaderAccess {
  /** Most reads under way on the node; default {@link MAX_OPEN_READS}. */
  maxReads?: number;
  /** Most reads one client may have under way; default {@link MAX_OPEN_READS_PER_CLIENT}. */
  maxReadsPerClient?: number;
}

/**
 * The read slots of one node: share one instance between the gateway and the file routes, so a
 * client's reads on both count together.
 *
 * @example
 * ```ts
 * import { ReadSlots } from "./read_slots.ts";
 * const slots = new ReadSlots({ maxReads: 2 });
 * const release = slots.take({ label: "loopback" });
 * slots.open; // 1
 * release();
 * ```
 */
export class ReadSlots {
  readonly #maxReads: number;
  readonly #maxPerClient: number;
  readonly #access: ReaderAccess;
  #open = 0;
  /** Reads under way per client; a client is dropped when its last read ends. */
  readonly #byClient = new Map<string, number>();

  /**
   * Create it.
   *
   * @param options The limits, and the access rules readers are named by.
   */
  constructor(options: ReadSlotsOptions = {}) {
    this.#maxReads = options.maxReads ?? MAX_OPEN_READS;
    this.#maxPerClient = options.maxReadsPerClient ?? MAX_OPEN_READS_PER_CLIENT;
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

  /**
   * Take a slot for one read of `client`, or throw 429 `too_many_reads` naming the limit it met;
   * call the result once the read has ended (a second call does nothing).
   */
  take(client: ClientIdentity): () => void {
    const id = queueClient(client);
    const mine = this.#byClient.get(id) ?? 0;
    if (mine >= this.#maxPerClient) {
      throw new EdgeError(
        "too_many_reads",
        `this client (${client.label}) already has ${mine} reads of stored files under way ` +
          `(/ipfs, /share, /v1/files), its per-client limit of ${this.#maxPerClient}: finish ` +
          "reading one, or retry after the Retry-After seconds",
        { retryAfterS: RETRY_AFTER_S },
      );
    }
    if (this.#open >= this.#maxReads) {
      throw new EdgeError(
        "too_many_reads",
        `this node has ${this.#open} reads of stored files under way (/ipfs, /share, ` +
          `/v1/files), its node-wide limit of ${this.#maxReads}: retry after the Retry-After ` +
          "seconds",
        { retryAfterS: RETRY_AFTER_S },
      );
    }
    this.#open++;
    this.#byClient.set(id, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open--;
      const left = (this.#byClient.get(id) ?? 1) - 1;
      if (left === 0) this.#byClient.delete(id);
      else this.#byClient.set(id, left);
    };
  }

  /**
   * A route handler (placed before the read's own) that takes the request's slot, or refuses it,
   * and gives it back when the answer is over: see the module's text.
   */
  guard(): MiddlewareHandler<EdgeEnv> {
    return async (c, next) => {
      const release = this.take(readerOf(c, this.#access));
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
      c.res = new Response(releasedAtEnd(res.body, release), res);
    };
  }
}

/**
 * `body`, calling `release` once it has been read to its end, has failed, or was cancelled (the
 * client went away); pulled one piece at a time, so it buffers nothing of its own.
 */
function releasedAtEnd(
  body: ReadableStream<Uint8Array>,
  release: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        release();
        throw error;
      }
      if (next.done) {
        release();
        controller.close();
      } else controller.enqueue(next.value);
    },
    cancel(reason) {
      release();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
