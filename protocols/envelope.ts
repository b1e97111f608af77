/**
 * The envelope: the one shape every Veriflow message has on the wire.
 *
 * ```
 * { v, type, id, from?, re?, body, sig? }
 * ```
 * - `v`: protocol version ({@link PROTOCOL_VERSION}); anything else is refused.
 * - `type`: selects the body schema in the message registry.
 * - `id`: unique per sender and connection (a counter); requests are answered by id.
 * - `re`: present on every message that belongs to an exchange (replies, stream chunks,
 *   credits, cancels, errors): the `id` of the request that opened it.
 * - `from` / `sig`: the signer's ed25519 public key and its signature over the canonical
 *   CBOR of the envelope without `sig` (see `envelope_signing.ts`).
 * - `body`: the message itself, validated against its type's schema before any handler sees it.
 *
 * Decoding is staged so every failure has its own typed error and, where the envelope could
 * be read far enough, the coordinates (`id`, `re`, `type`) needed to send an error back.
 *
 * @module
 */
import { z } from "zod";
import { encodeCbor, encodeCborWithHeadroom } from "./cbor.ts";
import {
  decodeCheckedCbor,
  DEFAULT_MAX_CBOR_DEPTH,
  DEFAULT_MAX_FRAME_VALUES,
  frameValueBound,
} from "./cbor_guard.ts";
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from "./identity.ts";
import type { BodySchema } from "./message_registry.ts";
import {
  InvalidEnvelopeError,
  type ProtocolErrorOptions,
  UnknownVersionError,
} from "./protocol_errors.ts";

/** The protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;

/** Longest accepted `type` string: types are short dotted names, not payload. */
export const MAX_TYPE_LENGTH = 128;

/** A wire message. `B` is the body type once validated. */
export interface Envelope<B = unknown> {
  /** Protocol version. */
  v: number;
  /** Message type (registry key). */
  type: string;
  /** Sender-unique message id. */
  id: number;
  /** Signer's 32-byte ed25519 public key (present when signed). */
  from?: Uint8Array;
  /** Id of the request this message belongs to. */
  re?: number;
  /** The message body. */
  body: B;
  /** 64-byte ed25519 signature over the canonical CBOR of the envelope without `sig`. */
  sig?: Uint8Array;
}

const messageId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * Zod schema of the envelope itself (the body is checked separately, against its type's
 * schema). `v` is any integer here so an unknown version gets its own error code.
 */
export const envelopeSchema: BodySchema<Envelope<unknown>> = z.object({
  v: z.number().int(),
  type: z.string().min(1).max(MAX_TYPE_LENGTH),
  id: messageId,
  from: z.instanceof(Uint8Array).refine((k) => k.byteLength === PUBLIC_KEY_BYTES, {
    message: `from must be ${PUBLIC_KEY_BYTES} bytes`,
  }).optional(),
  re: messageId.optional(),
  body: z.unknown(),
  sig: z.instanceof(Uint8Array).refine((s) => s.byteLength === SIGNATURE_BYTES, {
    message: `sig must be ${SIGNATURE_BYTES} bytes`,
  }).optional(),
}).strict() as unknown as BodySchema<Envelope<unknown>>;

/** The keys an envelope may have, in {@link envelopeSchema}'s order. */
const ENVELOPE_KEYS: ReadonlySet<string> = new Set([
  "v",
  "type",
  "id",
  "from",
  "re",
  "body",
  "sig",
]);

/** A message id as {@link messageId} takes it. */
function isMessageId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A byte string of `length` bytes, as the schema's `from` and `sig` take it. */
function isBytes(value: unknown, length: number): value is Uint8Array {
  return value instanceof Uint8Array && value.byteLength === length;
}

/**
 * A decoded envelope checked by hand, with exactly {@link envelopeSchema}'s output (a fresh
 * object, its keys in the schema's order, the body and byte strings as decoded); undefined
 * when it is not sure the schema would take it as is (an unknown key, an `undefined` value, a
 * field out of range), and the schema then decides. It only ever takes what the schema takes,
 * so every refusal and its message stay the schema's (`tests/protocols/envelope_test.ts`).
 * Why: every frame a node reads is an envelope, and a router reads one per event it relays.
 */
function envelopeFast(raw: unknown): Envelope<unknown> | undefined {
  if (raw === null || typeof raw !== "object" || Object.getPrototypeOf(raw) !== Object.prototype) {
    return undefined;
  }
  const r = raw as Record<string, unknown>;
  for (const key in r) {
    if (!ENVELOPE_KEYS.has(key) || r[key] === undefined) return undefined;
  }
  const { v, type, id, from, re, body, sig } = r;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) return undefined;
  if (typeof type !== "string" || type.length < 1 || type.length > MAX_TYPE_LENGTH) {
    return undefined;
  }
  if (!isMessageId(id) || !("body" in r)) return undefined;
  // Built in the schema's key order (`from` and `re` before `body`), as the schema builds it.
  const envelope: Record<string, unknown> = { v, type, id };
  if ("from" in r) {
    if (!isBytes(from, PUBLIC_KEY_BYTES)) return undefined;
    envelope.from = from;
  }
  if ("re" in r) {
    if (!isMessageId(re)) return undefined;
    envelope.re = re;
  }
  envelope.body = body;
  if ("sig" in r) {
    if (!isBytes(sig, SIGNATURE_BYTES)) return undefined;
    envelope.sig = sig;
  }
  return envelope as unknown as Envelope<unknown>;
}

/** Options of {@link decodeEnvelope}. */
export interface DecodeEnvelopeOptions {
  /** Maximum CBOR nesting depth (default {@link DEFAULT_MAX_CBOR_DEPTH}). */
  maxDepth?: number;
  /**
   * Most maps, arrays and byte strings in the envelope, its body's included (default
   * {@link DEFAULT_MAX_FRAME_VALUES}); fewer in a small frame (see `frameValueBound`).
   */
  maxValues?: number;
}

/** Encode an envelope as CBOR. Optional fields that are `undefined` are left out. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return encodeCbor(wireFields(envelope));
}

/**
 * {@link encodeEnvelope}'s bytes after `headroom` free bytes (a frame's length prefix), in one
 * new buffer. A body with large byte strings at its top level (a storage chunk) is encoded with
 * each of their bytes copied once (see `encodeCborWithHeadroom`).
 */
export function encodeEnvelopeWithHeadroom(envelope: Envelope, headroom: number): Uint8Array {
  return encodeCborWithHeadroom(wireFields(envelope), headroom, topLevelBytes(envelope.body));
}

/** The envelope as the object that goes on the wire: absent optionals absent, not CBOR null. */
function wireFields(envelope: Envelope): Record<string, unknown> {
  const out: Record<string, unknown> = {
    v: envelope.v,
    type: envelope.type,
    id: envelope.id,
  };
  if (envelope.from !== undefined) out.from = envelope.from;
  if (envelope.re !== undefined) out.re = envelope.re;
  out.body = envelope.body;
  if (envelope.sig !== undefined) out.sig = envelope.sig;
  return out;
}

/** Bytes of the byte strings among a body's own fields: what most of a bulk body is. */
function topLevelBytes(body: unknown): number {
  if (body === null || typeof body !== "object") return 0;
  let bytes = 0;
  for (const key in body) {
    const field = (body as Record<string, unknown>)[key];
    if (field instanceof Uint8Array) bytes += field.byteLength;
  }
  return bytes;
}

/** What could be read of a rejected envelope, to address an error reply. */
function coordinates(raw: unknown): ProtocolErrorOptions {
  if (raw === null || typeof raw !== "object") return {};
  const r = raw as Record<string, unknown>;
  const ok = (x: unknown): x is number => messageId.safeParse(x).success;
  return {
    envelopeId: ok(r.id) ? r.id : undefined,
    envelopeRe: ok(r.re) ? r.re : undefined,
    envelopeType: typeof r.type === "string" && r.type.length <= MAX_TYPE_LENGTH
      ? r.type
      : undefined,
  };
}

/**
 * Decode and check an envelope (not its body): well-formed CBOR within the depth and value
 * limits, the envelope shape, and the protocol version. Throws a `ProtocolError` subclass
 * (`malformed_cbor`, `nesting_too_deep`, `invalid_envelope`, `unknown_version`).
 */
export function decodeEnvelope(bytes: Uint8Array, options?: DecodeEnvelopeOptions): Envelope {
  const raw = decodeCheckedCbor(
    bytes,
    options?.maxDepth ?? DEFAULT_MAX_CBOR_DEPTH,
    frameValueBound(bytes.byteLength, options?.maxValues ?? DEFAULT_MAX_FRAME_VALUES),
  );
  const fast = envelopeFast(raw);
  const parsed = fast === undefined
    ? envelopeSchema.safeParse(raw)
    : { success: true as const, data: fast };
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidEnvelopeError(
      `not an envelope: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
      coordinates(raw),
    );
  }
  const envelope = parsed.data;
  if (envelope.v !== PROTOCOL_VERSION) {
    throw new UnknownVersionError(envelope.v, coordinates(envelope));
  }
  return envelope;
}
