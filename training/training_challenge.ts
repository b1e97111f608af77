/**
 * Training challenges: a validator, holding a trainer's signed receipt, names a few of its
 * steps for the trainer to open (states before and after, the batch with Merkle proofs).
 *
 * The steps are drawn from the validator's own randomness after the receipt is signed, so
 * the trainer cannot know which steps will be checked while it trains; the last step H − 1 is
 * always among them (it ties the committed states to the delta the trainer sent). The
 * challenge is signed by the validator under its own domain, names the receipt by id and
 * carries a deadline: a trainer that has not answered by then is at fault, and the signed
 * challenge is the evidence (`opening_missing`).
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import { type TrainingReceipt, trainingReceiptId } from "./training_receipt.ts";

/** Version of the challenge format. */
export const TRAINING_CHALLENGE_VERSION = 1;
const TRAINING_CHALLENGE_DOMAIN = "veriflow/training-challenge/v1";
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Steps opened per challenge: the first and the last, plus 7 drawn at random. A trainer that
 * faked a fraction f of its H steps escapes one challenge with probability (1 − f)^k over the
 * k random steps: f = 0.5 → 0.8 % (caught 99.2 %), f = 0.25 → 13 %, f = 0.1 → 48 %. Faking
 * the last step is always caught, and so is a chain that does not start from the start model
 * (step 0's state is checked against it: a "warm start" from a model trained elsewhere passed
 * every challenge that did not draw step 0, 86 % of them at H = 50, until stop 33). Every
 * conviction slashes the stake, so the expected cost of skipping a fraction f of the work is a
 * stake times 1 − (1 − f)^7 against a saving of f of the compute. 9 re-run steps are ~1.8 % of
 * a 500-step round's compute. See `docs/TRAINING.md`.
 */
export const TRAINING_CHALLENGE_STEPS = 9;
/**
 * Time a trainer has to answer a challenge whatever it asks (seal, sign, send, and the first
 * steps' re-run). A validator's window adds to it per step the challenge makes the trainer re-run
 * (`opening_window.ts`): a fixed 60 s slashed an honest trainer on a loaded machine (stop 76).
 * Also the shortest window a checker takes an `opening_missing` on.
 */
export const DEFAULT_OPENING_DEADLINE_MS = 60_000;

/** A signed training challenge. */
export interface TrainingChallenge {
  /** Format version. */
  v: number;
  /** Hex id of the challenged receipt. */
  receiptId: string;
  /** The trainer's public key (from the receipt). */
  trainer: Uint8Array;
  /** Challenged steps, ascending, distinct, all below H, always including H − 1. */
  steps: number[];
  /** Hex 16 random bytes: two challenges of one receipt differ. */
  nonce: string;
  /** Unix ms by which the sealed opening must arrive. */
  deadline: number;
  /** Unix ms of issue. */
  issuedAt: number;
  /** The validator's public key (openings are sealed to it). */
  validator: Uint8Array;
  /** The validator's signature over {@link trainingChallengeSigningBytes}. */
  sig: Uint8Array;
}

const bytes = (len: number) =>
  z.instanceof(Uint8Array).refine((b) => b.length === len, { message: `expected ${len} bytes` });

/** Zod schema of a training challenge on the wire. */
export const TrainingChallengeSchema: z.ZodType<TrainingChallenge> = z.object({
  v: z.literal(TRAINING_CHALLENGE_VERSION),
  receiptId: z.string().regex(HEX64),
  trainer: bytes(32),
  steps: z.array(z.number().int().nonnegative()).min(1).max(1024)
    .refine((s) => s.every((x, i) => i === 0 || x > s[i - 1]), { message: "steps ascending" }),
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  deadline: z.number().int().nonnegative(),
  issuedAt: z.number().int().nonnegative(),
  validator: bytes(32),
  sig: bytes(64),
}) as unknown as z.ZodType<TrainingChallenge>;

/** The bytes a challenge's signature covers. */
export function trainingChallengeSigningBytes(
  challenge: Omit<TrainingChallenge, "sig"> | TrainingChallenge,
): Uint8Array {
  const { sig: _sig, ...unsigned } = challenge as TrainingChallenge;
  return encodeCanonical({ domain: TRAINING_CHALLENGE_DOMAIN, challenge: unsigned });
}

/** Hex id of a challenge (SHA-256 of its signed bytes). */
export function trainingChallengeId(challenge: Omit<TrainingChallenge, "sig">): string {
  return sha256Hex(trainingChallengeSigningBytes(challenge));
}

/** Uniform integer in [0, n) from the platform CSPRNG (rejection sampling, no modulo bias). */
function randomBelow(n: number): number {
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    if (buf[0] < limit) return buf[0] % n;
  }
}

/**
 * The steps to open for a receipt of H steps: H − 1, then 0 (when `count` ≥ 2), and the rest
 * drawn uniformly without replacement from 1 … H − 2 (all steps when H ≤ count).
 */
export function drawChallengeSteps(h: number, count: number = TRAINING_CHALLENGE_STEPS): number[] {
  const want = Math.min(Math.max(1, count), h);
  const picked = new Set<number>([h - 1]);
  if (picked.size < want) picked.add(0);
  while (picked.size < want) picked.add(1 + randomBelow(h - 2));
  return [...picked].sort((a, b) => a - b);
}

/** Options of {@link drawTrainingChallenge}. */
export interface DrawTrainingChallengeOptions {
  /** Steps to open; default {@link TRAINING_CHALLENGE_STEPS}. */
  steps?: number;
  /**
   * Answer window, ms, or a function of the drawn steps that gives it (a validator's window
   * grows with the steps the trainer must re-run: `openingWindowMs` in `opening_window.ts`);
   * default {@link DEFAULT_OPENING_DEADLINE_MS}.
   */
  deadlineMs?: number | ((steps: readonly number[]) => number);
  /** Clock (unix ms). */
  now?: () => number;
}

/** Draw and sign a challenge for `receipt` as `validator`. */
export function drawTrainingChallenge(
  receipt: TrainingReceipt,
  validator: Identity,
  options: DrawTrainingChallengeOptions = {},
): TrainingChallenge {
  const issuedAt = Math.floor((options.now ?? Date.now)());
  const steps = drawChallengeSteps(receipt.steps, options.steps);
  const window = typeof options.deadlineMs === "function"
    ? options.deadlineMs(steps)
    : options.deadlineMs ?? DEFAULT_OPENING_DEADLINE_MS;
  const body: Omit<TrainingChallenge, "sig"> = {
    v: TRAINING_CHALLENGE_VERSION,
    receiptId: trainingReceiptId(receipt),
    trainer: receipt.trainer,
    steps,
    nonce: toHex(crypto.getRandomValues(new Uint8Array(16))),
    deadline: issuedAt + Math.floor(window),
    issuedAt,
    validator: validator.publicKey,
  };
  return { ...body, sig: validator.sign(trainingChallengeSigningBytes(body)) };
}

/** True when `value` is a well-formed challenge signed by its validator. Never throws. */
export function verifyTrainingChallenge(value: unknown): value is TrainingChallenge {
  const r = TrainingChallengeSchema.safeParse(value);
  if (!r.success) return false;
  return verifySignature(r.data.validator, trainingChallengeSigningBytes(r.data), r.data.sig);
}

/**
 * True when `challenge` is a valid challenge of `receipt`: signed, naming this receipt and
 * its trainer, at most {@link TRAINING_CHALLENGE_STEPS} steps (what a trainer opens: each step
 * reveals a batch of its private samples), and every step below H with H − 1 among them. A
 * trainer refuses a challenge that does not fit, so no proof may rest on one: an
 * `opening_missing` over a challenge of every step convicted an honest trainer for refusing to
 * reveal its whole run (found by a review).
 */
export function challengeFitsReceipt(
  challenge: TrainingChallenge,
  receipt: TrainingReceipt,
): boolean {
  if (!verifyTrainingChallenge(challenge)) return false;
  if (challenge.receiptId !== trainingReceiptId(receipt)) return false;
  if (toHex(challenge.trainer) !== toHex(receipt.trainer)) return false;
  if (challenge.steps.length > TRAINING_CHALLENGE_STEPS) return false;
  return challenge.steps.every((s) => s < receipt.steps) &&
    challenge.steps.includes(receipt.steps - 1);
}
