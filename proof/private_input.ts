/**
 * Private job inputs: a prompt sealed to the chosen validator's key, so storage nodes and
 * other peers that carry it see ciphertext only.
 *
 * The validator's ed25519 identity key is converted to X25519 (the birational map from the
 * Edwards to the Montgomery form of Curve25519, `ed25519.utils.toMontgomery*`), so a node needs
 * no second key pair. Sealing is ECIES-style: a fresh ephemeral X25519 key, ECDH with the
 * recipient, HKDF-SHA256 (salt = ephemeral ‖ recipient public keys, info = a domain string and
 * the hash of the context) to a 32-byte key, then XChaCha20-Poly1305 (a 24-byte random nonce is
 * safe to pick at random). The context is bound as associated data, so a box sealed under one
 * context does not open under another. A text job's context ({@link privateJobContext}) is a hash
 * of the whole job but its prompt, so a sealed prompt opens only for the job it was sealed for.
 *
 * Every refusal, sealing or opening, is a {@link SealedInputError} (`sealed_input_unopenable`)
 * whose `reason` says which: a box comes from another node, so a validator must be able to
 * refuse any bytes it is handed without an untyped error escaping.
 *
 * @module
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import { type Identity, PUBLIC_KEY_BYTES } from "../protocols/identity.ts";
import type { TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";

/**
 * The format this module seals and opens. The primitive did not change in review s73; what a
 * text job's box is sealed under did ({@link privateJobContext}, its own domain), so a job box
 * sealed under the old context (model and nonce only) no longer opens (`unopenable`), while
 * training's step openings, whose context already bound everything, keep working across versions.
 */
export const SEALED_INPUT_VERSION = 1;
/** HKDF info domain; its version moves with {@link SEALED_INPUT_VERSION}. */
const INFO_PREFIX = "veriflow/private-input/v1";
/**
 * Domain of a text job's context, so it can never equal another use's context. v2: v1 bound only
 * the model and nonce, joined without lengths (review s73).
 */
const JOB_CONTEXT_DOMAIN = "veriflow/private-job/v2";
const KEY_BYTES = 32;
/** X25519 public keys are 32 bytes (RFC 7748). */
const EPHEMERAL_BYTES = 32;
/** XChaCha20's extended nonce: long enough to draw at random without a collision worry. */
const NONCE_BYTES = 24;
/** Poly1305's tag: a ciphertext shorter than it cannot be a box. */
const TAG_BYTES = 16;

/** An input sealed to one recipient. */
export interface SealedInput {
  /** Format version ({@link SEALED_INPUT_VERSION}). */
  v: number;
  /** The recipient's ed25519 public key (so it knows the box is for it). */
  recipient: Uint8Array;
  /** Ephemeral X25519 public key. */
  ephemeral: Uint8Array;
  /** XChaCha20-Poly1305 nonce. */
  nonce: Uint8Array;
  /** Ciphertext with its 16-byte tag. */
  ciphertext: Uint8Array;
}

/**
 * Why a seal or an open was refused:
 * - `bad_recipient_key`: sealing to bytes that are not a usable ed25519 public key (not 32
 *   bytes, not a curve point, or a low-order point, whose shared secret anyone can compute);
 * - `malformed`: the box, the context, the plaintext or the job is not of the right shape;
 * - `unsupported_version`: a box of another format than {@link SEALED_INPUT_VERSION};
 * - `not_for_this_key`: the box names another recipient;
 * - `unopenable`: it does not decrypt (another key, altered, or another context);
 * - `not_utf8`: a sealed prompt that decrypts to bytes that are not UTF-8.
 */
export type SealedInputRefusal =
  | "bad_recipient_key"
  | "malformed"
  | "unsupported_version"
  | "not_for_this_key"
  | "unopenable"
  | "not_utf8";

/**
 * A sealed input that cannot be sealed or opened (see {@link SealedInputRefusal}). One code for
 * all of them, so a caller that refuses a peer's box needs to know one error.
 */
export class SealedInputError extends VeriflowError {
  /** Which refusal this is. */
  readonly reason: SealedInputRefusal;

  /**
   * Create the error.
   * @param message Human-readable explanation.
   * @param reason Which refusal (default `unopenable`).
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, reason: SealedInputRefusal = "unopenable", options?: ErrorOptions) {
    super("sealed_input_unopenable", message, options);
    this.reason = reason;
  }
}

const encoder = new TextEncoder();

/** What `value` is, for a refusal's message (never its content: it may be secret). */
function described(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

function checkBytes(value: unknown, what: string, length?: number, min = 0): Uint8Array {
  const ok = value instanceof Uint8Array &&
    (length === undefined ? value.length >= min : value.length === length);
  if (ok) return value;
  const want = length === undefined ? `at least ${min} bytes` : `${length} bytes`;
  throw new SealedInputError(`${what} must be ${want}, got ${described(value)}`, "malformed");
}

/** The recipient's X25519 key; refuses a key whose box anyone could open or none could. */
function recipientX25519(recipient: unknown): Uint8Array {
  if (!(recipient instanceof Uint8Array) || recipient.length !== PUBLIC_KEY_BYTES) {
    throw new SealedInputError(
      `a recipient key is ${PUBLIC_KEY_BYTES} bytes, got ${described(recipient)}`,
      "bad_recipient_key",
    );
  }
  let point;
  try {
    point = ed25519.Point.fromBytes(recipient);
  } catch (cause) {
    throw new SealedInputError(
      "the recipient key is not an ed25519 public key (not a curve point)",
      "bad_recipient_key",
      { cause },
    );
  }
  // A low-order point (the neutral element among them) gives a shared secret that does not
  // depend on the ephemeral key's secret: everyone could derive the box's key.
  if (point.isSmallOrder()) {
    throw new SealedInputError(
      "the recipient key is a low-order point: a box sealed to it would be readable by anyone",
      "bad_recipient_key",
    );
  }
  return ed25519.utils.toMontgomery(recipient);
}

function deriveKey(
  shared: Uint8Array,
  ephemeral: Uint8Array,
  recipientX: Uint8Array,
  context: Uint8Array,
): Uint8Array {
  const salt = new Uint8Array(64);
  salt.set(ephemeral, 0);
  salt.set(recipientX, 32);
  const prefix = encoder.encode(INFO_PREFIX);
  const info = new Uint8Array(prefix.length + 32);
  info.set(prefix, 0);
  info.set(sha256(context), prefix.length);
  return hkdf(sha256, shared, salt, info, KEY_BYTES);
}

/**
 * Seal `plaintext` to the holder of the ed25519 key `recipient`, bound to `context`.
 *
 * @throws {SealedInputError} `bad_recipient_key` for a key that is not 32 bytes, not a curve
 * point, or of low order; `malformed` when `plaintext` or `context` is not bytes.
 *
 * @example
 * ```ts
 * import { Identity } from "../protocols/identity.ts";
 * import { openInput, sealInput } from "./private_input.ts";
 * const validator = Identity.generate();
 * const ctx = new TextEncoder().encode("job-nonce-1");
 * const box = sealInput(new TextEncoder().encode("secret prompt"), validator.publicKey, ctx);
 * new TextDecoder().decode(openInput(box, validator, ctx)); // "secret prompt"
 * ```
 */
export function sealInput(
  plaintext: Uint8Array,
  recipient: Uint8Array,
  context: Uint8Array = new Uint8Array(0),
): SealedInput {
  checkBytes(plaintext, "the plaintext");
  checkBytes(context, "the context");
  const recipientX = recipientX25519(recipient);
  const eph = x25519.utils.randomSecretKey();
  const ephemeral = x25519.getPublicKey(eph);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(eph, recipientX);
  } catch (cause) {
    // Unreachable for a key past recipientX25519; kept typed should the curve library differ.
    throw new SealedInputError("no shared secret with the recipient key", "bad_recipient_key", {
      cause,
    });
  } finally {
    eph.fill(0);
  }
  const key = deriveKey(shared, ephemeral, recipientX, context);
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const ciphertext = xchacha20poly1305(key, nonce, context).encrypt(plaintext);
  return {
    v: SEALED_INPUT_VERSION,
    recipient: new Uint8Array(recipient),
    ephemeral,
    nonce,
    ciphertext,
  };
}

/** `sealed` if it has the shape of a current box; what it lacks otherwise. */
function checkedBox(sealed: unknown): SealedInput {
  if (typeof sealed !== "object" || sealed === null || Array.isArray(sealed)) {
    throw new SealedInputError(
      `a sealed input is an object, got ${described(sealed)}`,
      "malformed",
    );
  }
  const box = sealed as Record<string, unknown>;
  if (box.v !== SEALED_INPUT_VERSION) {
    throw new SealedInputError(
      `unknown sealed input version ${
        typeof box.v === "number" ? box.v : described(box.v)
      } (this node opens v${SEALED_INPUT_VERSION})`,
      "unsupported_version",
    );
  }
  return {
    v: SEALED_INPUT_VERSION,
    recipient: checkBytes(box.recipient, "a sealed input's recipient", PUBLIC_KEY_BYTES),
    ephemeral: checkBytes(box.ephemeral, "a sealed input's ephemeral key", EPHEMERAL_BYTES),
    nonce: checkBytes(box.nonce, "a sealed input's nonce", NONCE_BYTES),
    ciphertext: checkBytes(box.ciphertext, "a sealed input's ciphertext", undefined, TAG_BYTES),
  };
}

/**
 * Open a sealed input with the recipient's identity.
 *
 * @throws {SealedInputError} `malformed` or `unsupported_version` for a box of the wrong shape or
 * format, `not_for_this_key` when it names another recipient, `unopenable` when it was sealed to
 * another key, altered, or under another context.
 */
export function openInput(
  sealed: SealedInput,
  identity: Identity,
  context: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const box = checkedBox(sealed);
  checkBytes(context, "the context");
  if (!bytesEqual(box.recipient, identity.publicKey)) {
    throw new SealedInputError("the sealed input is for another key", "not_for_this_key");
  }
  const secret = identity.exportSecretKey();
  try {
    const mySecretX = ed25519.utils.toMontgomerySecret(secret);
    const myPublicX = ed25519.utils.toMontgomery(identity.publicKey);
    const shared = x25519.getSharedSecret(mySecretX, box.ephemeral);
    const key = deriveKey(shared, box.ephemeral, myPublicX, context);
    return xchacha20poly1305(key, box.nonce, context).decrypt(box.ciphertext);
  } catch (cause) {
    throw new SealedInputError(
      `cannot open sealed input: ${(cause as Error).message}`,
      "unopenable",
      {
        cause,
      },
    );
  } finally {
    secret.fill(0);
  }
}

/**
 * The context a private text job's prompt is sealed under: SHA-256 of the canonical CBOR of the
 * whole job but its prompt (model, params, nonce, precision, input, requester), under a domain of
 * its own. The job id itself depends on the prompt, so it cannot be the context; this binds the
 * box to every other field of the job, so it opens for that job only. A `prompt` passed along is
 * left out.
 *
 * @throws {SealedInputError} `malformed` when `job` is not an object or has no canonical encoding
 * (a string that is not well-formed Unicode).
 */
export function privateJobContext(job: Omit<TextJob, "prompt"> & { prompt?: string }): Uint8Array {
  if (typeof job !== "object" || job === null || Array.isArray(job)) {
    throw new SealedInputError(`a job is an object, got ${described(job)}`, "malformed");
  }
  const { prompt: _prompt, ...shell } = job;
  try {
    return sha256(encodeCanonical({ domain: JOB_CONTEXT_DOMAIN, job: shell }));
  } catch (cause) {
    throw new SealedInputError(
      `the job has no canonical encoding: ${(cause as Error).message}`,
      "malformed",
      { cause },
    );
  }
}

/**
 * Seal a text job's prompt to the validator that will check it; storage nodes and peers then
 * carry only the box. The validator rebuilds the job with {@link openJobPrompt}.
 *
 * @throws {SealedInputError} `malformed` for a prompt that is not well-formed text (its UTF-8
 * would not give it back), else as {@link sealInput} and {@link privateJobContext}.
 */
export function sealJobPrompt(job: TextJob, validatorKey: Uint8Array): SealedInput {
  const context = privateJobContext(job);
  if (typeof job.prompt !== "string" || !job.prompt.isWellFormed()) {
    throw new SealedInputError("the prompt is not well-formed text", "malformed");
  }
  return sealInput(encoder.encode(job.prompt), validatorKey, context);
}

/**
 * Open a sealed prompt and rebuild the job (its id then matches the worker's receipt).
 *
 * @throws {SealedInputError} as {@link openInput} (`unopenable` for a shell that differs in any
 * field from the job the prompt was sealed for), or `not_utf8` for a prompt that is not UTF-8.
 */
export function openJobPrompt(
  shell: Omit<TextJob, "prompt">,
  sealed: SealedInput,
  validator: Identity,
): TextJob {
  const bytes = openInput(sealed, validator, privateJobContext(shell));
  let prompt: string;
  try {
    prompt = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new SealedInputError("the sealed prompt is not UTF-8", "not_utf8", { cause });
  }
  return { ...shell, prompt };
}
