/**
 * The inbound side of a `Connection`: where each decoded envelope goes, and what happens to
 * the ones we refuse.
 *
 * An envelope is checked once, here, at the edge: its signature if it carries one (bound to
 * the session, made by the peer's own key, and on an id above the last signed one verified, so
 * a replay costs no verify; unsigned frames need none, the handshake proved the peer), its body
 * against the registry, and for a request, that its protocol was negotiated. Then it is routed: a
 * request to the responder, a reply/chunk/end/error to the requester, credit and cancel to
 * the exchange they name. A refusal is answered with a typed `error`, addressed as precisely
 * as the envelope allows, and counted: a peer refused more than `maxRefusals` times within
 * `refusalWindowMs` is cut off with `too_many_refusals`. Frames that are valid and do nothing —
 * a `ping`, a credit or cancel naming no running stream, a credit past a stream's window, a
 * second cancel, a late answer to a request we gave up on, an `error` that answers nothing of
 * ours — are refused nothing, but each costs a decode and a schema check (a `ping`, a `pong`
 * too): past `maxIdleFrames` of them in one window, each further one is dropped and counted as a
 * refusal, so a peer flooding them is cut off as a garbage flood is.
 *
 * @module
 */
import type { Envelope } from "./envelope.ts";
import { assertEnvelopeSignature } from "./envelope_signing.ts";
import {
  type CancelBody,
  CancelMessage,
  CORE_MESSAGES,
  CreditMessage,
  type ErrorBody,
  ErrorMessage,
  PingMessage,
  PongMessage,
} from "./messages.ts";
import {
  BadSignatureError,
  BusyError,
  ProtocolError,
  RemoteError,
  TooManyRefusalsError,
} from "./protocol_errors.ts";
import type { NegotiatedProtocols } from "./connection_protocols.ts";
import type { OneWayRefusal } from "./_connection_notices.ts";
import type { Session } from "./session_handshake.ts";
import { type ConnectionCore, type ControlFrame, errorText } from "./_connection_common.ts";
import type { Requester } from "./_connection_requester.ts";
import type { Responder } from "./_connection_responder.ts";

/**
 * Refusals tolerated per window before the peer is cut off. An honest peer is refused only
 * through a bug or version skew: a few messages, each once. 100 in 10 s is far above that,
 * yet ends a garbage flood after 100 frames instead of answering it forever (each refusal
 * costs us a decode, a schema check, maybe a signature check, and an error frame). `busy` is
 * not counted: it is our load, not the peer's fault.
 */
export const DEFAULT_MAX_REFUSALS = 100;
/** The window of {@link DEFAULT_MAX_REFUSALS}. */
export const DEFAULT_REFUSAL_WINDOW_MS = 10_000;
/**
 * Frames that do nothing ({@link InboundRouter}: pings, credits and cancels naming no running
 * stream, credits past a stream's window, repeated cancels, late answers, errors that answer
 * nothing of ours) tolerated per refusal window before each further one counts as a
 * refusal. An honest peer sends a few: a keepalive ping or pong a second, a credit or cancel
 * that crossed its stream's end, an answer after its request timed out — tens per window even
 * on a connection that ends hundreds of streams a second. 10,000 in 10 s is far above that, and
 * bounds what a flood of them costs the node to about 1 % of a core per connection (~10 µs
 * each on this 2-core machine; unbounded, 100,000 of them a second kept a core busy).
 */
export const DEFAULT_MAX_IDLE_FRAMES = 10_000;

const CORE_TYPES: ReadonlySet<string> = new Set(CORE_MESSAGES.map((m) => m.type));

/** What the router is wired to. */
export interface InboundRouterOptions {
  core: ConnectionCore;
  requester: Requester;
  responder: Responder;
  /** The session, once the handshake set it. */
  session(): Session | undefined;
  /** The negotiated protocols, once the handshake set them. */
  protocols(): NegotiatedProtocols | undefined;
  /** Every id this side issued is below this. */
  issuedBelow(): number;
  /** Close the connection. */
  close(error: Error): void;
  maxRefusals: number;
  refusalWindowMs: number;
  /** Frames that do nothing tolerated per refusal window ({@link DEFAULT_MAX_IDLE_FRAMES}). */
  maxIdleFrames: number;
  onProtocolError?: (error: ProtocolError) => void;
  onRemoteError?: (error: RemoteError) => void;
  /**
   * The peer answered our envelope `re` (a reply, chunk, end, error or pong): it read everything
   * we sent before it (`_connection_notices.ts`).
   */
  readPast?: (re: number) => void;
  /**
   * The peer refused our one-way message `about` with `code`. Returns whether it is sent again
   * (`busy`, and known here) and its type; any other `error` frame that is no answer does nothing
   * but tell.
   */
  refusedOneWay?: (about: number, code: string) => OneWayRefusal;
}

/** See the module doc. */
export class InboundRouter {
  readonly #o: InboundRouterOptions;
  #windowStart: number;
  #windowRefusals = 0;
  #windowIdleFrames = 0;
  /** Inbound messages refused, in total. */
  refused = 0;
  /**
   * Id of the last signed envelope whose signature verified (-1: none yet). Ids only grow per
   * sender, so a signed envelope at or below it is a replay, refused before any verify.
   */
  #lastSignedId = -1;

  /** @param options Wiring and limits. */
  constructor(options: InboundRouterOptions) {
    this.#o = options;
    this.#windowStart = options.core.timers.now();
  }

  /** Check and route one decoded envelope. */
  dispatch(raw: Envelope): void {
    const where = { envelopeId: raw.id, envelopeRe: raw.re, envelopeType: raw.type };
    const session = this.#o.session();
    let body: unknown;
    try {
      if (raw.sig !== undefined || raw.from !== undefined) {
        if (!session) {
          throw new BadSignatureError("a signed envelope needs a session (Connection.open)", where);
        }
        // A signed envelope is newer than the last one verified or refused (counted) before any
        // verify: ids only grow per sender, and a peer resending one signed frame made the node
        // verify it each time (~0.11 ms) and answer it, never refused (review s64).
        if (raw.id <= this.#lastSignedId) {
          throw new BadSignatureError("a signed envelope replayed (its id is not new)", where);
        }
        // Signed by the peer's own key or refused (counted) before any verify: bound to this
        // session, no one else's signature can be genuine here, and a peer signing under
        // throwaway keys made the node verify each frame without a refusal (~0.1–0.6 ms each).
        assertEnvelopeSignature(raw, session.sessionId, session.peerKey);
        this.#lastSignedId = raw.id;
      }
      body = this.#o.core.registry.parseBody(raw.type, raw.body, where);
      const protocols = this.#o.protocols();
      if (raw.re === undefined && protocols && !CORE_TYPES.has(raw.type)) {
        protocols.check(raw.type, where);
      }
    } catch (error) {
      this.refuse(
        error instanceof ProtocolError
          ? error
          : new BadSignatureError("signature check failed", { ...where, cause: error }),
      );
      return;
    }
    const envelope: Envelope = { ...raw, body };
    if (raw.re === undefined) return this.#onRequest(envelope, session);
    switch (raw.type) {
      case CreditMessage.type: {
        const { chunks } = body as { chunks: number };
        if (!this.#o.responder.onCredit(raw.re, chunks)) this.#idle();
        return;
      }
      case CancelMessage.type: {
        const { code, message, held } = body as CancelBody;
        if (!this.#o.responder.onCancel(raw.re, code, message, held)) this.#idle();
        return;
      }
    }
    // An answer about an id of ours (credit and cancel above name the peer's own requests).
    if (raw.re < this.#o.issuedBelow()) this.#o.readPast?.(raw.re);
    if (this.#o.requester.onResponse(envelope, raw.re, this.#o.issuedBelow()) === "late") {
      this.#idle();
    }
  }

  /**
   * Report a refused inbound message to the peer, addressed as precisely as we can.
   * @param send How the `error` frame goes out (default: offered, dropped when the budget is full).
   */
  refuse(error: ProtocolError, send?: (frame: ControlFrame) => void): void {
    this.refused++;
    this.#o.onProtocolError?.(error);
    if (!(error instanceof BusyError) && this.#overLimit()) return;
    const re = error.envelopeRe;
    const type = error.envelopeType;
    const control = type === CreditMessage.type || type === CancelMessage.type;
    if (re !== undefined && !control && this.#o.requester.has(re)) {
      // A bad reply, chunk or error for one of our requests (ids are per sender, so only
      // response types can name one): that request fails here, and the peer is told to stop.
      this.#o.requester.failRefused(re, error);
      return;
    }
    // Never answer an error with an error: two confused peers would ping-pong forever.
    if (type === ErrorMessage.type) return;
    if (re !== undefined && control && this.#o.responder.abortRefused(re, error)) {
      // A bad control message about a stream we serve: that exchange cannot be trusted.
      this.#sendError(error, { re });
    } else if (re !== undefined || (error.envelopeId !== undefined && this.#isOneWay(type))) {
      // Part of an exchange, or a one-way message: nothing on the peer waits on its id, and an
      // error `re` it would drop as a late answer, so `about` names it (its onRemoteError).
      this.#sendError(error, { about: error.envelopeId }, send);
    } else if (error.envelopeId !== undefined) {
      // Possibly a request: answering with re = its id fails it on the peer's side.
      this.#sendError(error, { re: error.envelopeId }, send);
    } else {
      this.#sendError(error, {}, send);
    }
  }

  /** The framing broke and the connection will close: tell the hook and the peer why. */
  reportFatal(error: ProtocolError): void {
    this.#o.onProtocolError?.(error);
    this.#sendError(error, {});
  }

  /** Whether `type` is a registered one-way message (not answered, answering nothing). */
  #isOneWay(type: string | undefined): boolean {
    const { registry } = this.#o.core;
    const definition = type === undefined ? undefined : registry.get(type);
    return definition !== undefined && !definition.reply && !definition.chunk &&
      !registry.isAnswer(definition.type);
  }

  /** Start a new window when the current one is over. */
  #rollWindow(): void {
    const now = this.#o.core.timers.now();
    if (now - this.#windowStart >= this.#o.refusalWindowMs) {
      this.#windowStart = now;
      this.#windowRefusals = 0;
      this.#windowIdleFrames = 0;
    }
  }

  /**
   * Count a frame that did nothing; past {@link InboundRouterOptions.maxIdleFrames} in the
   * window it is a refusal (counted, answered with nothing: the flood would only grow). Returns
   * true when it was over the allowance (a `ping` then goes unanswered).
   */
  #idle(): boolean {
    this.#rollWindow();
    if (++this.#windowIdleFrames <= this.#o.maxIdleFrames) return false;
    this.refused++;
    this.#overLimit();
    return true;
  }

  /** Count a refusal in the current window; close and return true when over the limit. */
  #overLimit(): boolean {
    this.#rollWindow();
    if (++this.#windowRefusals <= this.#o.maxRefusals) return false;
    const error = new TooManyRefusalsError(this.#windowRefusals, this.#o.refusalWindowMs);
    this.#sendError(error, {});
    this.#o.close(error);
    return true;
  }

  /** An error reply, best effort (dropped when the byte budget is full) unless `send` says. */
  #sendError(
    error: ProtocolError,
    coords: { re?: number; about?: number },
    send: (frame: ControlFrame) => void = (frame) => this.#o.core.offer(frame),
  ): void {
    const body: Record<string, unknown> = { code: error.code, message: errorText(error) };
    if (coords.about !== undefined) body.about = coords.about;
    send({ type: ErrorMessage.type, re: coords.re, body });
  }

  /** A request (or one-way message) from the peer. */
  #onRequest(envelope: Envelope, session: Session | undefined): void {
    if (envelope.type === PingMessage.type) {
      if (this.#idle()) return;
      this.#o.core.offer({ type: PongMessage.type, re: envelope.id, body: envelope.body });
      return;
    }
    if (envelope.type === ErrorMessage.type) {
      const { code, message, about } = envelope.body as ErrorBody;
      // A one-way message of ours refused `busy` goes again after a backoff; each refusal is
      // still reported (logs and metrics see how often the peer was too busy). Any other error
      // that answers no request of ours (none addressed, or `about` a message not waiting here)
      // only tells: a frame that does nothing, past the allowance dropped unreported.
      const refused = about === undefined ? undefined : this.#o.refusedOneWay?.(about, code);
      if (refused?.resent !== true && this.#idle()) return;
      // The message it refuses, when it is one of ours: the hook can say what was refused (a
      // peer refusing our hello, `network/_hello_refusals.ts`), where the code alone named nothing.
      const where = refused?.type === undefined
        ? undefined
        : { envelopeId: about, envelopeType: refused.type };
      this.#o.onRemoteError?.(new RemoteError(code, message, where));
      return;
    }
    const from = envelope.sig ? envelope.from : undefined;
    this.#o.responder.onRequest(envelope, { from, peer: session?.peerKey });
  }
}
