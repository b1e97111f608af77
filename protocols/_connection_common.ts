/**
 * What the parts of a `Connection` (requester side, responder side) need of the connection
 * they live in, and small helpers they share. Private to `protocols/`.
 *
 * @module
 */
import { VeriflowError } from "./errors.ts";
import type { Envelope } from "./envelope.ts";
import type { ConnectionTimers } from "./connection_timers.ts";
import type { MessageRegistry } from "./message_registry.ts";
import { MAX_ERROR_MESSAGE_LENGTH } from "./messages.ts";
import type { ConnectionClosedError, ProtocolError } from "./protocol_errors.ts";

/** A frame without the fields the connection fills in (`v`, `id`). */
export type ControlFrame = Omit<Envelope, "v" | "id">;

/** The connection as its parts see it. */
export interface ConnectionCore {
  /** The registry inbound bodies are validated against. */
  readonly registry: MessageRegistry;
  /** The clock of every timeout. */
  readonly timers: ConnectionTimers;
  /** Whether close has begun (nothing new may start). */
  readonly isClosing: boolean;
  /** The next envelope id of this side. */
  nextId(): number;
  /** Queue whole envelopes, waiting for room in the byte budget. */
  send(envelopes: readonly Envelope[]): Promise<void>;
  /** Queue a control frame that must arrive; waits for room in the background. */
  post(frame: ControlFrame): void;
  /** Queue a best-effort frame (`error`, `pong`) only if there is room now. */
  offer(frame: ControlFrame): void;
  /** Whether the write queue can take more work now (for admitting peer requests). */
  readonly hasRoom: boolean;
  /**
   * Whether a finished handler's reply may wait for room: less than a budget's worth of sends
   * already waits beyond the budget (so replies held for a peer stay under twice the budget).
   */
  readonly hasRoomForReply: boolean;
  /** The error that things started after close fail with. */
  closedError(): ConnectionClosedError;
  /**
   * Refuse an inbound message: count it and tell the peer, addressed as well as possible.
   * @param send How the `error` frame goes out: {@link offer}ed (best effort) unless given (an
   * admission `busy`, whose frame may wait for room: `_connection_responder.ts`).
   */
  refuse(error: ProtocolError, send?: (frame: ControlFrame) => void): void;
}

/** An error's message, cut to what the wire accepts. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.slice(0, MAX_ERROR_MESSAGE_LENGTH);
}

/** An error's wire code: a VeriflowError's own, else `handler_error`. */
export function errorCode(error: unknown): string {
  return error instanceof VeriflowError ? error.code : "handler_error";
}
