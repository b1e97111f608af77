/**
 * The requester side of a `Connection`: our requests awaiting a reply, and the receive side of
 * the flow-controlled streams we opened.
 *
 * Outbound work is bounded twice: at most `maxPendingRequests` requests and streams are in
 * flight (more wait for a slot, in order, under their own timeout and signal), and their
 * frames wait for room in the connection's byte budget like every other frame.
 *
 * @module
 */
import { PROTOCOL_VERSION } from "./envelope.ts";
import type { Envelope } from "./envelope.ts";
import type { MessageDefinition } from "./message_registry.ts";
import {
  type CancelBody,
  CancelMessage,
  CreditMessage,
  EndMessage,
  ErrorMessage,
} from "./messages.ts";
import { heldOf } from "./held_cancel.ts";
import {
  FlowControlError,
  type ProtocolError,
  RemoteError,
  RequestCancelledError,
  RequestTimeoutError,
  StreamCancelledError,
  UnexpectedMessageError,
} from "./protocol_errors.ts";
import { type ConnectionCore, errorText } from "./_connection_common.ts";

/** Our request awaiting one reply. */
interface PendingReply {
  kind: "reply";
  definition: MessageDefinition;
  resolve(body: unknown): void;
  fail(error: Error): void;
}

/** Our stream request: the receive side of a flow-controlled stream. */
interface PendingStream {
  kind: "stream";
  definition: MessageDefinition;
  /** Received chunks not yet read (at most `window`). */
  queue: unknown[];
  /** Credits granted so far, in total: sent to the peer (owed credit counts once it is sent). */
  granted: number;
  /** Chunks received so far, in total. */
  received: number;
  /** Consumed chunks not yet re-granted. */
  ungranted: number;
  done: boolean;
  error: Error | null;
  /** Wakes a pull() waiting for a chunk, the end, or an error. */
  wake: (() => void) | null;
  /** The stream failed: the reader sees `error` after the chunks already queued. */
  fail(error: Error): void;
  /** The sender finished: the reader sees the end after the chunks already queued. */
  end(): void;
}

type Pending = PendingReply | PendingStream;

/** A request or stream waiting for an in-flight slot. */
interface SlotWaiter {
  /** Holding a slot now: send. */
  start(): void;
  /** The connection closed first. */
  abandon(): void;
}

/** Limits of the requester side. */
export interface RequesterOptions {
  /** Most requests and streams in flight at once. */
  maxPendingRequests: number;
}

/** See the module doc. */
export class Requester {
  readonly #core: ConnectionCore;
  readonly #options: RequesterOptions;
  readonly #pending = new Map<number, Pending>();
  #slotWaiters: SlotWaiter[] = [];
  #inFlight = 0;

  /**
   * @param core The connection.
   * @param options Limits and defaults.
   */
  constructor(core: ConnectionCore, options: RequesterOptions) {
    this.#core = core;
    this.#options = options;
  }

  /** Requests awaiting a reply or still streaming. */
  get size(): number {
    return this.#pending.size;
  }

  /** Those of them of message `definition`. */
  sizeOf(definition: MessageDefinition): number {
    let n = 0;
    for (const pending of this.#pending.values()) if (pending.definition === definition) n++;
    return n;
  }

  /** Requests and streams waiting for a slot. */
  get waiting(): number {
    return this.#slotWaiters.length;
  }

  /** Chunks received and not yet read, over all our streams. */
  bufferedChunks(): number {
    let n = 0;
    for (const p of this.#pending.values()) if (p.kind === "stream") n += p.queue.length;
    return n;
  }

  /** Whether `re` names one of our requests still in progress. */
  has(re: number): boolean {
    return this.#pending.has(re);
  }

  /** Fail one request because the peer's answer to it was refused, and tell the peer to stop. */
  failRefused(re: number, error: ProtocolError): void {
    this.#pending.get(re)?.fail(error);
    this.sendCancel(re, error);
  }

  /** Fail everything pending and waiting (the connection is closing). */
  failAll(error: Error): void {
    for (const pending of [...this.#pending.values()]) pending.fail(error);
    this.#pending.clear();
    const waiters = this.#slotWaiters;
    this.#slotWaiters = [];
    for (const waiter of waiters) waiter.abandon();
  }

  /**
   * Tell the peer we gave up on request `id`; `held`: how much of its stream our consumer holds
   * (`held_cancel.ts`), sent only when known.
   */
  sendCancel(id: number, error: ProtocolError, held?: number): void {
    const body: CancelBody = { code: error.code, message: errorText(error) };
    if (held !== undefined) body.held = held;
    this.#core.post({ type: CancelMessage.type, re: id, body });
  }

  /** Send a request and await its reply. See `Connection.request`. */
  request(
    definition: MessageDefinition,
    body: unknown,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const { timers } = this.#core;
    return new Promise((resolve, reject) => {
      let settled = false;
      let id: number | undefined;
      let withdraw = () => {};
      const finish = () => {
        settled = true;
        withdraw();
        timers.clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (id !== undefined && this.#pending.delete(id)) this.#releaseSlot();
      };
      const giveUp = (error: ProtocolError) => {
        if (settled) return;
        const sent = id !== undefined && this.#pending.has(id);
        finish();
        if (sent) this.sendCancel(id!, error);
        reject(error);
      };
      const onAbort = () =>
        giveUp(new RequestCancelledError("request aborted", { cause: signal?.reason }));
      const timer = timers.setTimeout(
        () => giveUp(new RequestTimeoutError(definition.type, timeoutMs)),
        timeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      const entry: PendingReply = {
        kind: "reply",
        definition,
        resolve: (reply) => {
          if (settled) return;
          finish();
          resolve(reply);
        },
        fail: (error) => {
          if (settled) return;
          finish();
          reject(error);
        },
      };
      withdraw = this.#acquireSlot({
        abandon: () => entry.fail(this.#core.closedError()),
        start: () => {
          id = this.#core.nextId();
          this.#pending.set(id, entry);
          this.#core.send([{ v: PROTOCOL_VERSION, type: definition.type, id, body }])
            .catch((error) => entry.fail(error));
        },
      });
    });
  }

  /** Open a streamed request. See `Connection.openStream`. */
  openStream(
    definition: MessageDefinition,
    body: unknown,
    window: number,
    signal?: AbortSignal,
  ): ReadableStream<unknown> {
    let id: number | undefined;
    let withdraw = () => {};
    // Re-grant in batches of half the window: far fewer credit frames than one per chunk,
    // while the sender still never runs dry as long as the reader keeps up.
    const grantBatch = Math.max(1, Math.floor(window / 2));
    const settle = () => {
      withdraw();
      signal?.removeEventListener("abort", onAbort);
      if (id !== undefined && this.#pending.get(id) === state) {
        this.#pending.delete(id);
        this.#releaseSlot();
      }
    };
    const state: PendingStream = {
      kind: "stream",
      definition,
      queue: [],
      granted: window,
      received: 0,
      ungranted: 0,
      done: false,
      error: null,
      wake: null,
      fail: (error) => {
        if (state.done || state.error) return;
        state.error = error;
        settle();
        state.wake?.();
      },
      end: () => {
        if (state.done || state.error) return;
        state.done = true;
        settle();
        state.wake?.();
      },
    };
    const isLive = () => id !== undefined && this.#pending.get(id) === state;
    // One credit frame of this stream on its way out at a time: credit must arrive, so it waits
    // for room (outside the budget) when the peer does not read, and a peer that kept sending
    // what it knew it may send made us queue one more frame per half window read, without end.
    // What the reader frees while one waits is owed, and goes out in one frame once it is taken;
    // it counts as granted only then, when the peer can know of it, so it stays within a window.
    let creditOwed = 0;
    let creditSending = false;
    const sendCredit = (): void => {
      const chunks = creditOwed;
      creditOwed = 0;
      creditSending = true;
      state.granted += chunks;
      const credit = { v: PROTOCOL_VERSION, type: CreditMessage.type, id: this.#core.nextId() };
      this.#core.send([{ ...credit, re: id, body: { chunks } }]).then(() => {
        creditSending = false;
        if (creditOwed > 0 && isLive()) sendCredit();
      }, () => {
        creditSending = false; // fails only when the connection closes: nobody left to tell
      });
    };
    const onAbort = () => {
      const error = new StreamCancelledError("stream aborted", { cause: signal?.reason });
      if (isLive()) this.sendCancel(id!, error);
      state.queue.length = 0; // an abort is immediate: queued chunks are not delivered
      state.fail(error);
    };
    const stream = new ReadableStream<unknown>({
      pull: async (controller) => {
        while (state.queue.length === 0 && !state.done && !state.error) {
          await new Promise<void>((resolve) => (state.wake = resolve));
          state.wake = null;
        }
        if (state.queue.length > 0) {
          controller.enqueue(state.queue.shift());
          if (state.done || state.error) return;
          if (++state.ungranted >= grantBatch) {
            creditOwed += state.ungranted;
            state.ungranted = 0;
            if (!creditSending) sendCredit();
          }
          return;
        }
        if (state.error) controller.error(state.error);
        else controller.close();
      },
      cancel: (reason) => {
        if (isLive()) {
          this.sendCancel(
            id!,
            new StreamCancelledError(`reader cancelled: ${errorText(reason)}`),
            heldOf(reason),
          );
        }
        state.fail(new StreamCancelledError("reader cancelled"));
        state.queue.length = 0;
      },
    }, { highWaterMark: 0 });

    if (this.#core.isClosing) {
      state.fail(this.#core.closedError());
      return stream;
    }
    if (signal?.aborted) {
      state.fail(new StreamCancelledError("stream aborted", { cause: signal.reason }));
      return stream;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    withdraw = this.#acquireSlot({
      abandon: () => state.fail(this.#core.closedError()),
      start: () => {
        id = this.#core.nextId();
        this.#pending.set(id, state);
        const credit = { chunks: window };
        // The request, then the initial window, back to back: the peer sees them in order.
        this.#core.send([
          { v: PROTOCOL_VERSION, type: definition.type, id, body },
          {
            v: PROTOCOL_VERSION,
            type: CreditMessage.type,
            id: this.#core.nextId(),
            re: id,
            body: credit,
          },
        ]).catch((error) => state.fail(error));
      },
    });
    return stream;
  }

  /**
   * A reply, chunk, end or error for one of our requests.
   * @param issuedBelow Every id this side has issued is below it (late answers are quiet).
   * @returns `"late"` when it answers a request no longer waiting (dropped quietly: a frame
   *   that did nothing).
   */
  onResponse(envelope: Envelope, re: number, issuedBelow: number): "late" | undefined {
    const pending = this.#pending.get(re);
    const where = { envelopeId: envelope.id, envelopeRe: re, envelopeType: envelope.type };
    if (!pending) {
      // Ids we issued may get late answers (after a timeout or cancel): drop those quietly.
      if (re < issuedBelow || envelope.type === ErrorMessage.type) return "late";
      this.#core.refuse(new UnexpectedMessageError(`no request with id ${re}`, where));
      return;
    }
    if (envelope.type === ErrorMessage.type) {
      const { code, message } = envelope.body as { code: string; message: string };
      pending.fail(new RemoteError(code, message));
      return;
    }
    if (pending.kind === "reply") {
      if (envelope.type === pending.definition.reply?.type) {
        pending.resolve(envelope.body);
        return;
      }
      const what = `${envelope.type} is not a reply to ${pending.definition.type}`;
      this.#core.refuse(new UnexpectedMessageError(what, where));
      return;
    }
    if (envelope.type === EndMessage.type) {
      pending.end();
      return;
    }
    if (envelope.type !== pending.definition.chunk?.type) {
      const what = `${envelope.type} is not a chunk of ${pending.definition.type}`;
      this.#core.refuse(new UnexpectedMessageError(what, where));
      return;
    }
    if (++pending.received > pending.granted) {
      const what = `chunk ${pending.received} exceeds ${pending.granted} credits`;
      this.#core.refuse(new FlowControlError(what, where));
      return;
    }
    pending.queue.push(envelope.body);
    pending.wake?.();
  }

  /**
   * Start `waiter` once fewer than `maxPendingRequests` are in flight (FIFO).
   * @returns A function that takes the waiter out of the line (it gave up while waiting).
   */
  #acquireSlot(waiter: SlotWaiter): () => void {
    const none = () => {};
    if (this.#core.isClosing) {
      waiter.abandon();
      return none;
    }
    if (this.#inFlight < this.#options.maxPendingRequests && this.#slotWaiters.length === 0) {
      this.#inFlight++;
      waiter.start();
      return none;
    }
    this.#slotWaiters.push(waiter);
    return () => {
      const at = this.#slotWaiters.indexOf(waiter);
      if (at >= 0) this.#slotWaiters.splice(at, 1);
    };
  }

  /** A request or stream left `#pending`: its slot goes to the next waiter still waiting. */
  #releaseSlot(): void {
    this.#inFlight--;
    if (this.#core.isClosing) return; // failAll abandons the waiters
    while (this.#slotWaiters.length > 0 && this.#inFlight < this.#options.maxPendingRequests) {
      const waiter = this.#slotWaiters.shift()!;
      this.#inFlight++;
      waiter.start();
    }
  }
}
