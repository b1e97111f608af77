/**
 * Private job inputs: a prompt sealed to the chosen validator's key, so storage nodes and
 * other peers that carry it see ciphertext only.
 *
 * The validator's ed25519 identity key is converted to X25519 (the birational map from the
 * Edwards to the Montgomery form of Curve25519, `ed25519.utils.toMontgomery*`), so a node needs
 * no second key pair. Sealing is ECIES-style: a fresh ephemeral X25519 key, ECDH with the
 * recipient, HKDF-SHA256 (salt = ephemeral ‖ recipient public keys, info = a domain string and
 * the job's context) to a 32-byte key, then XChaCha20-Poly1305 (a 24-byte random nonce is safe
 * to pick at random). The context (for example the job's model CID and nonce) is bound as
 * associated data, so a sealed input cannot be moved to another job.
 *
 * @module
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Identity } from "../protocols/identity.ts";
import type { TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";

const INFO_PREFIX = "veriflow/private-input/v1";
const KEY_BYTES = 32;
const NONCE_BYTES = 24;

/** An input sealed to one recipient. */
export interface SealedInput {
  /** Format version. */
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

/** The sealed input cannot be opened by this identity (wrong key, tampered, wrong context). */
export class SealedInputError extends VeriflowError {
  /**
   * Create the error.
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("sealed_input_unopenable", message);
  }
}

const encoder = new TextEncoder();

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
  const recipientX = ed25519.utils.toMontgomery(recipient);
  const eph = x25519.utils.randomSecretKey();
  const ephemeral = x25519.getPublicKey(eph);
  const shared = x25519.getSharedSecret(eph, recipientX);
  const key = deriveKey(shared, ephemeral, recipientX, context);
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const ciphertext = xchacha20poly1305(key, nonce, context).encrypt(plaintext);
  return { v: 1, recipient: new Uint8Array(recipient), ephemeral, nonce, ciphertext };
}

/**
 * Open a sealed input with the recipient's identity.
 *
 * @throws {SealedInputError} when the box is not for this identity, was altered, or the context
 * differs.
 */
export function openInput(
  sealed: SealedInput,
  identity: Identity,
  context: Uint8Array = new Uint8Array(0),
): Uint8Array {
  if (sealed.v !== 1) throw new SealedInputError(`unknown sealed input version ${sealed.v}`);
  const secret = identity.exportSecretKey();
  try {
    const mySecretX = ed25519.utils.toMontgomerySecret(secret);
    const myPublicX = ed25519.utils.toMontgomery(identity.publicKey);
    const shared = x25519.getSharedSecret(mySecretX, sealed.ephemeral);
    const key = deriveKey(shared, sealed.ephemeral, myPublicX, context);
    return xchacha20poly1305(key, sealed.nonce, context).decrypt(sealed.ciphertext);
  } catch (cause) {
    throw new SealedInputError(`cannot open sealed input: ${(cause as Error).message}`);
  } finally {
    secret.fill(0);
  }
}

/**
 * The context a private text job's prompt is sealed under: its model CID and nonce (the job id
 * itself depends on the prompt, so it cannot be the context). Binds the box to one job.
 */
export function privateJobContext(job: Pick<TextJob, "model" | "nonce">): Uint8Array {
  return encoder.encode(`${job.model}\n${job.nonce}`);
}

/**
 * Seal a text job's prompt to the validator that will check it; storage nodes and peers then
 * carry only the box. The validator rebuilds the job with {@link openJobPrompt}.
 */
export function sealJobPrompt(job: TextJob, validatorKey: Uint8Array): SealedInput {
  return sealInput(encoder.encode(job.prompt), validatorKey, privateJobContext(job));
}

/** Open a sealed prompt and rebuild the job (its id then matches the worker's receipt). */
export function openJobPrompt(
  shell: Omit<TextJob, "prompt">,
  sealed: SealedInput,
  validator: Identity,
): TextJob {
  const prompt = new TextDecoder("utf-8", { fatal: true }).decode(
    openInput(sealed, validator, privateJobContext(shell)),
  );
  return { ...shell, prompt };
}
