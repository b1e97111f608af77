/**
 * The responder side of a `Connection`: peer requests we are handling, the handler runner,
 * and the pump that sends a handler's stream only while the requester has granted credit.
 *
 * Admission is where a flood is stopped: a peer message is refused with `busy` when
 * `maxInboundRequests` are running, and a peer request also when the write queue has no room
 * (the peer is not reading what we already owe it), so handlers do not pile up. A one-way
 * message is not refused for a full write queue: it writes nothing back, and
 * `maxInboundRequests` bounds its handlers all the same. A reply is checked again when its
 * handler is done, since a burst of requests all pass admission before any reply exists:
 * replies wait for room up to one more budget's worth, and one past that is dropped and its
 * request answered `busy` instead. So replies held for a peer stay under twice the budget,
 * beside at most `maxInboundRequests` small `busy` answers from handlers and as many from
 * admission (below); chunks wait under the stream's credit. The read loop never waits for any.
 *
 * `busy` is the one refusal its sender acts on: it asks again, or sends its one-way message
 * again (`_connection_notices.ts`). So an admission `busy`'s `error` frame waits for room, in
 * order, like a reply, instead of being offered like other refusals: offered, it was dropped
 * exactly when the budget was full, which is when a refusal for a full budget is made, and the
 * sender never learnt of it (review s60: the message lost on that connection, a request left to
 * its timeout). At most `maxInboundRequests` of these answers wait or are queued at once, so a
 * peer that never reads cannot make us hold more than that many small frames; past that bound a
 * refusal is offered, and so dropped, like any other.
 *
 * @module
 */
import { type Envelope, PROTOCOL_VERSION } from "./envelope.ts";
import type { MessageDefinition } from "./message_registry.ts";
import { EndMessage, ErrorMessage } from "./messages.ts";
import { HeldCancelError } from "./held_cancel.ts";
import {
  BusyError,
  CreditTimeoutError,
  NoHandlerError,
  type ProtocolError,
  StreamCancelledError,
  UnexpectedMessageError,
} from "./protocol_errors.ts";
import { type ConnectionCore, errorCode, errorText } from "./_connection_common.ts";
import type { WireBudget } from "./wire_budget.ts";

/** Why a request is refused when the write budget is full. */
const NOT_READING = "the peer is not reading our replies";

/** A handler as the responder stores it (see `Handler` in `connection_types.ts`). */
export type AnyHandler = (
  body: unknown,
  ctx: HandlerContextBase,
) => unknown;

/** What the responder puts in every handler context; the connection adds itself. */
export interface HandlerContextBase {
  /** The validated envelope (body already parsed). */
  envelope: Envelope;
  /** The verified signer, if the envelope was signed. */
  from?: Uint8Array;
  /** The peer's key, authenticated by the session handshake. */
  peer?: Uint8Array;
  /** Aborted when the requester cancels, times out, or the connection closes. */
  signal: AbortSignal;
  /**
   * Chunks of this request's stream the requester has given credit back for: its grants past
   * its first (the window). A reader grants again only for chunks it has taken, so these are
   * chunks it read. It stays readable after the stream ends (0 for a request that is not a stream).
   */
  credited: () => number;
}

/** The responder's bounds beyond its own `maxInbound`. */
export interface ResponderLimits {
  /** The node's budget shared by all its connections (`wire_budget.ts`), if any. */
  budget?: WireBudget;
  /** Who the peer is, for the budget's per-peer shares (its hex key, or this connection's label). */
  peer: () => string;
  /** End a served stream that had no credit for this long (0 = never). */
  creditTimeoutMs: number;
}

/** A peer request we are handling. */
interface InboundExchange {
  abort: AbortController;
  /** Credits the peer granted us and we have not used (streams only). */
  credits: number;
  /**
   * The peer's first grant: its window (streams only; undefined until it comes). An honest
   * reader grants again only for chunks it has read, so its unused credit never exceeds it.
   */
  window?: number;
  /** Chunks sent and not yet re-credited, for stats. */
  inFlight: number;
  /** Every grant of the peer, its first included: what `credited` counts from. */
  granted: number;
  /** Wakes the stream pump waiting for credit. */
  wake: (() => void) | null;
}

/** See the module doc. */
export class Responder {
  readonly #core: ConnectionCore;
  readonly #maxInbound: number;
  readonly #handlers = new Map<string, AnyHandler>();
  readonly #inbound = new Map<number, InboundExchange>();
  readonly #context: (base: HandlerContextBase) => unknown;
  readonly #limits: ResponderLimits;
  /** Admission `busy` answers queued or waiting for room (at most `#maxInbound`). */
  #busyAnswers = 0;

  /**
   * @param core The connection.
   * @param maxInbound Most peer requests handled at once.
   * @param context Completes a handler context (adds the connection).
   * @param limits The node's budget and the stream credit deadline.
   */
  constructor(
    core: ConnectionCore,
    maxInbound: number,
    context: (base: HandlerContextBase) => unknown,
    limits: ResponderLimits,
  ) {
    this.#core = core;
    this.#maxInbound = maxInbound;
    this.#context = context;
    this.#limits = limits;
  }

  /** Peer requests being handled. */
  get size(): number {
    return this.#inbound.size;
  }

  /** Chunks sent on peer streams and not yet re-credited. */
  inFlightChunks(): number {
    let n = 0;
    for (const exchange of this.#inbound.values()) n += exchange.inFlight;
    return n;
  }

  /** Register a handler; throws if the type already has one. */
  handle(type: string, handler: AnyHandler): void {
    if (this.#handlers.has(type)) {
      throw new TypeError(`a handler for ${type} is already registered`);
    }
    this.#handlers.set(type, handler);
  }

  /** Abort every running handler (the connection is closing). */
  abortAll(error: Error): void {
    for (const exchange of this.#inbound.values()) exchange.abort.abort(error);
  }

  /**
   * The peer granted credit on a stream we serve. Returns false when it did nothing: no such
   * stream runs (it already ended: a late credit, harmless), or it leaves more credit unused than
   * the peer's first grant (an honest reader never owes more than its window: credit past it is
   * only a frame to decode, however many come).
   */
  onCredit(re: number, chunks: number): boolean {
    const exchange = this.#inbound.get(re);
    if (!exchange) return false;
    exchange.window ??= chunks;
    exchange.credits += chunks;
    exchange.granted += chunks;
    exchange.inFlight = Math.max(0, exchange.inFlight - chunks);
    exchange.wake?.();
    return exchange.credits <= exchange.window;
  }

  /**
   * The peer gave up on a request we serve. Returns false when it did nothing: no such request
   * runs, or it was cancelled already (its handler still winding down).
   */
  onCancel(re: number, code: string, message: string, held?: number): boolean {
    const exchange = this.#inbound.get(re);
    if (!exchange || exchange.abort.signal.aborted) return false;
    const why = `cancelled by the requester (${code}): ${message}`;
    // The requester's count of what its consumer holds reaches the handler's stream with the
    // cancel (`held_cancel.ts`).
    exchange.abort.abort(
      held === undefined ? new StreamCancelledError(why) : new HeldCancelError(held, why),
    );
    return true;
  }

  /** A bad credit or cancel about exchange `re`: abort it. Returns whether one was running. */
  abortRefused(re: number, error: ProtocolError): boolean {
    const exchange = this.#inbound.get(re);
    if (!exchange || exchange.abort.signal.aborted) return false;
    exchange.abort.abort(error);
    return true;
  }

  /** A request (or one-way message) from the peer. */
  onRequest(envelope: Envelope, extra: { from?: Uint8Array; peer?: Uint8Array }): void {
    const where = { envelopeId: envelope.id, envelopeType: envelope.type };
    const handler = this.#handlers.get(envelope.type);
    if (!handler) return this.#core.refuse(new NoHandlerError(envelope.type, where));
    if (this.#inbound.has(envelope.id)) {
      return this.#core.refuse(
        new UnexpectedMessageError(`id ${envelope.id} is already in use`, where),
      );
    }
    if (this.#inbound.size >= this.#maxInbound) {
      this.#limits.budget?.connectionRefused("connection_requests");
      return this.#refuseBusy(new BusyError(this.#maxInbound, where));
    }
    const definition = this.#core.registry.get(envelope.type) as MessageDefinition;
    const answered = Boolean(definition.reply || definition.chunk);
    if (!this.#core.hasRoom && answered) {
      this.#limits.budget?.connectionRefused("connection_queued_bytes");
      return this.#refuseBusy(new BusyError(NOT_READING, where));
    }
    // Then the node's budget, shared by all its connections: its bytes (for a request that is
    // answered, as above), then a handler slot, and a stream slot for a stream.
    const { budget } = this.#limits;
    const stream = Boolean(definition.chunk);
    const peer = budget === undefined ? undefined : this.#limits.peer();
    if (budget !== undefined && peer !== undefined) {
      const refused = (answered ? budget.byteRefusal(peer) : undefined) ??
        budget.admit(peer, stream);
      if (refused !== undefined) return this.#refuseBusy(new BusyError(refused, where));
    }
    const exchange: InboundExchange = {
      abort: new AbortController(),
      credits: 0,
      inFlight: 0,
      granted: 0,
      wake: null,
    };
    this.#inbound.set(envelope.id, exchange);
    this.#run(envelope, handler, exchange, extra).finally(() => {
      this.#inbound.delete(envelope.id);
      exchange.wake?.();
      if (peer !== undefined) budget?.release(peer, stream);
    });
  }

  /** Refuse a peer message `busy` at admission; its answer waits for room (see the module doc). */
  #refuseBusy(error: BusyError): void {
    this.#core.refuse(error, (frame) => {
      if (this.#busyAnswers >= this.#maxInbound) return this.#core.offer(frame);
      this.#busyAnswers++;
      this.#core.send([{ v: PROTOCOL_VERSION, id: this.#core.nextId(), ...frame }])
        .catch(() => {}) // only fails when the connection closes: nobody left to tell
        .finally(() => this.#busyAnswers--);
    });
  }

  async #run(
    envelope: Envelope,
    handler: AnyHandler,
    exchange: InboundExchange,
    extra: { from?: Uint8Array; peer?: Uint8Array },
  ): Promise<void> {
    const definition = this.#core.registry.get(envelope.type) as MessageDefinition;
    const signal = exchange.abort.signal;
    const oneWay = !definition.reply && !definition.chunk;
    try {
      const result = await handler(
        envelope.body,
        this.#context({
          envelope,
          from: extra.from,
          peer: extra.peer,
          signal,
          credited: () => exchange.granted - (exchange.window ?? 0),
        }) as never,
      );
      if (signal.aborted) {
        if (result instanceof ReadableStream) await result.cancel(signal.reason).catch(() => {});
        return;
      }
      if (definition.chunk) {
        if (!(result instanceof ReadableStream)) {
          throw new TypeError(`handler for ${envelope.type} must return a ReadableStream`);
        }
        await this.#pump(envelope.id, definition.chunk.type, result, exchange);
        return;
      }
      if (definition.reply) {
        if (!this.#core.hasRoomForReply) {
          // Admission saw room, but a burst of requests is admitted before any reply exists:
          // held until the peer reads, their replies would pile up outside the budget. So
          // replies wait for room up to a second budget's worth (an honest reader's burst, a
          // file read of 16 chunks at once, fits); past that a reply is dropped and its
          // request answered `busy` instead (below): an error of a hundred bytes that waits
          // for room like a reply, so the requester is told at once to ask again, not left to
          // its request timeout.
          const where = { envelopeId: envelope.id, envelopeType: envelope.type };
          this.#limits.budget?.connectionRefused("connection_queued_bytes");
          throw new BusyError(NOT_READING, where);
        }
        const id = this.#core.nextId();
        const reply = { v: PROTOCOL_VERSION, type: definition.reply.type, id, re: envelope.id };
        await this.#sendWhileOpen(signal, [{ ...reply, body: result }]);
      }
    } catch (error) {
      if (signal.aborted || this.#core.isClosing) return; // the requester is gone: nobody to tell
      const body = { code: errorCode(error), message: errorText(error) };
      if (oneWay) {
        // Nobody waits on a one-way message: its failure is best effort, like any refusal.
        this.#core.offer({ type: ErrorMessage.type, body: { ...body, about: envelope.id } });
        return;
      }
      // The requester waits on this: it is its reply, so it waits for room like one.
      const id = this.#core.nextId();
      await this.#sendWhileOpen(signal, [{
        v: PROTOCOL_VERSION,
        type: ErrorMessage.type,
        id,
        re: envelope.id,
        body,
      }])
        .catch(() => {}); // only fails when the connection closes: nobody left to tell
    }
  }

  /**
   * Send an exchange's frames, but stop waiting once its signal aborts (the connection closed, or
   * the requester gave up): the frames stay with the transport, while the exchange ends and gives
   * back its slots in the node's budget. Waiting on, it held them until the transport settled its
   * write, and a transport aborted with a write in flight to a peer that never reads may never
   * settle it (a `TransformStream` pipe does not): each such connection kept its streams' slots in
   * the node's budget for good (red team, stop 66).
   */
  #sendWhileOpen(signal: AbortSignal, envelopes: Envelope[]): Promise<void> {
    const sent = this.#core.send(envelopes);
    sent.catch(() => {}); // the race below may be lost to the abort: nobody else waits on it
    if (signal.aborted) return Promise.reject(signal.reason);
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    return Promise.race([sent, aborted]).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  }

  /** Send a handler's stream as chunks, only while the requester has granted credit. */
  async #pump(
    re: number,
    chunkType: string,
    source: ReadableStream<unknown>,
    exchange: InboundExchange,
  ): Promise<void> {
    const reader = source.getReader();
    const signal = exchange.abort.signal;
    const onAbort = () => {
      reader.cancel(signal.reason).catch(() => {});
      exchange.wake?.();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    // A source that ends or fails on its own (a job cancelled because its requester never
    // granted credit) has nothing left to send that needs credit: its `end` or `error` goes
    // out at once, so the exchange does not stay open until credit that may never come.
    let settled = false;
    const onSettled = () => {
      settled = true;
      exchange.wake?.();
    };
    reader.closed.then(onSettled, onSettled);
    const { creditTimeoutMs } = this.#limits;
    const timers = this.#core.timers;
    try {
      for (;;) {
        while (exchange.credits === 0 && !signal.aborted && !settled) {
          // No credit for creditTimeoutMs (credit that comes restarts it): the requester stopped
          // reading, and the stream ends with a typed error instead of holding its handler.
          let stalled = false;
          const timer = creditTimeoutMs > 0
            ? timers.setTimeout(() => {
              stalled = true;
              exchange.wake?.();
            }, creditTimeoutMs)
            : undefined;
          await new Promise<void>((resolve) => (exchange.wake = resolve));
          exchange.wake = null;
          timers.clearTimeout(timer);
          if (stalled && exchange.credits === 0 && !signal.aborted && !settled) {
            this.#limits.budget?.streamEnded("credit_timeout");
            throw new CreditTimeoutError(creditTimeoutMs, { envelopeId: re });
          }
        }
        if (signal.aborted) return;
        const { done, value } = await reader.read();
        if (signal.aborted) return;
        const id = this.#core.nextId();
        if (done) {
          await this.#sendWhileOpen(signal, [{
            v: PROTOCOL_VERSION,
            type: EndMessage.type,
            id,
            re,
            body: null,
          }]);
          return;
        }
        if (!this.#core.hasRoomForReply) {
          // A chunk waits for room like a reply, and like one only up to a budget's worth: a
          // burst of streams is admitted while nothing is owed yet, and each pump then held one
          // encoded chunk outside the budget (1024 of them of up to a frame each). Past that
          // the stream ends `busy` (its requester asks again), its source cancelled below.
          this.#limits.budget?.streamEnded("busy");
          throw new BusyError(NOT_READING, { envelopeId: re });
        }
        exchange.credits--;
        exchange.inFlight++;
        await this.#sendWhileOpen(signal, [{
          v: PROTOCOL_VERSION,
          type: chunkType,
          id,
          re,
          body: value,
        }]);
      }
    } catch (error) {
      if (!signal.aborted) reader.cancel(error).catch(() => {});
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      reader.releaseLock();
    }
  }
}
