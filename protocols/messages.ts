/**
 * The core message types every connection understands: liveness (`ping`/`pong`), failures
 * (`error`), and the stream control messages of the multiplexer (`credit`, `cancel`, `end`).
 * These names are reserved; other areas define their own types with dotted names
 * (`storage.get`, `inference.generate`).
 *
 * @module
 */
import { z } from "zod";
import {
  type AnyMessageDefinition,
  defineMessage,
  type MessageDefinition,
  MessageRegistry,
} from "./message_registry.ts";

/** Longest error code accepted on the wire. */
export const MAX_ERROR_CODE_LENGTH = 64;
/** Longest error message accepted on the wire (messages are for humans, not payload). */
export const MAX_ERROR_MESSAGE_LENGTH = 1024;
/**
 * Largest single credit grant. Windows are small (tens of chunks); a cap keeps a hostile
 * grant from overflowing counters.
 */
export const MAX_CREDIT_GRANT = 1 << 20;

const errorCode = z.string().min(1).max(MAX_ERROR_CODE_LENGTH);
const errorText = z.string().max(MAX_ERROR_MESSAGE_LENGTH);

/** Body of `pong`. */
export interface PongBody {
  /** The nonce of the ping it answers. */
  nonce: number;
}
/** Reply to `ping`. */
export const PongMessage: MessageDefinition<PongBody> = defineMessage(
  "pong",
  z.object({ nonce: z.number().int().nonnegative() }),
);

/** Body of `ping`. */
export interface PingBody {
  /** Echoed back in the pong. */
  nonce: number;
}
/** Liveness check; answered by the connection itself with `pong`. */
export const PingMessage: MessageDefinition<PingBody, PongBody> = defineMessage(
  "ping",
  z.object({ nonce: z.number().int().nonnegative() }),
  { reply: PongMessage },
);

/** Body of `error`. */
export interface ErrorBody {
  /** Stable error code. */
  code: string;
  /** Human-readable explanation. */
  message: string;
  /** `id` of the offending envelope, when the error is about one message rather than a request. */
  about?: number;
}
/**
 * A failure. With `re`: the request `re` failed (its reply or stream ends with this error).
 * Without `re`: the envelope named by `about` (or the connection itself) was refused.
 */
export const ErrorMessage: MessageDefinition<ErrorBody> = defineMessage(
  "error",
  z.object({
    code: errorCode,
    message: errorText,
    about: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  }),
);

/** Body of `credit`. */
export interface CreditBody {
  /** How many more chunks the stream's sender may send. */
  chunks: number;
}
/** Sent by a stream's reader (with `re` = its request id) as its consumer makes room. */
export const CreditMessage: MessageDefinition<CreditBody> = defineMessage(
  "credit",
  z.object({ chunks: z.number().int().min(1).max(MAX_CREDIT_GRANT) }),
);

/** Body of `cancel`. */
export interface CancelBody {
  /** Why the requester gave up (`stream_cancelled`, `request_timeout`, ...). */
  code: string;
  /** Human-readable explanation. */
  message: string;
  /**
   * How many of the stream's items the requester's own consumer holds, in the stream's
   * protocol's unit (`held_cancel.ts`): for an inference job, the output positions its client
   * got, which the worker signs its cancelled receipt over. Optional: absent, the serving side
   * goes by what it sent; a peer from before the field strips it (bodies are not strict).
   */
  held?: number;
}
/** Sent by a requester (with `re` = its request id) to abandon a request or stream. */
export const CancelMessage: MessageDefinition<CancelBody> = defineMessage(
  "cancel",
  z.object({
    code: errorCode,
    message: errorText,
    held: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  }),
);

/** Sent by a stream's sender (with `re`) after its last chunk. Body: `null`. */
export const EndMessage: MessageDefinition<null> = defineMessage("end", z.null());

/** All core definitions. */
export const CORE_MESSAGES: readonly AnyMessageDefinition[] = Object.freeze([
  PingMessage,
  PongMessage,
  ErrorMessage,
  CreditMessage,
  CancelMessage,
  EndMessage,
]);

/** A fresh registry holding the core messages; extend it with your own types. */
export function createCoreRegistry(): MessageRegistry {
  return new MessageRegistry(CORE_MESSAGES);
}
