/**
 * Stake pledges: a key's signed statement that it puts `amount` of stake behind its work.
 *
 * A ledger records a receipt only when its worker has free stake to lock against it, so every
 * node that settles a worker's receipts must know that worker's stake. Until Veriflow settles
 * on a chain, the stake is what the worker pledges: each node records a key's pledge once (the
 * first it sees; later pledges of the same key are ignored, so a slashed worker cannot refill
 * its stake by pledging again) and slashes it on proven fraud. The pledge is signed so nobody
 * can pledge — or refuse to pledge — in another key's name; what a pledge is worth outside the
 * network is the settlement layer's question, not this one's.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { type Identity, verifySignature } from "./identity.ts";

/** Version of the pledge format. */
export const STAKE_PLEDGE_VERSION = 1;
const STAKE_DOMAIN = "veriflow/stake/v1";

/** A signed stake pledge. */
export interface StakePledge {
  /** Format version. */
  v: number;
  /** The pledging key (ed25519 public key). */
  key: Uint8Array;
  /** Stake pledged (bookkeeping units, as in the ledger). */
  amount: number;
  /** Unix ms of issue. */
  issuedAt: number;
  /** Signature by `key` over {@link stakePledgeSigningBytes}. */
  sig: Uint8Array;
}

const bytes = (len: number) =>
  z.instanceof(Uint8Array).refine((b) => b.length === len, { message: `expected ${len} bytes` });

/** Zod schema of a pledge on the wire. */
export const StakePledgeSchema: z.ZodType<StakePledge> = z.object({
  v: z.literal(STAKE_PLEDGE_VERSION),
  key: bytes(32),
  amount: z.number().positive().finite().max(Number.MAX_SAFE_INTEGER),
  issuedAt: z.number().int().nonnegative(),
  sig: bytes(64),
}) as unknown as z.ZodType<StakePledge>;

/** The bytes a pledge's signature covers. */
export function stakePledgeSigningBytes(pledge: Omit<StakePledge, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = pledge as StakePledge;
  return encodeCanonical({ domain: STAKE_DOMAIN, pledge: unsigned });
}

/**
 * Pledge `amount` of stake as `identity`.
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { signStakePledge, verifyStakePledge } from "./stake_pledge.ts";
 * verifyStakePledge(signStakePledge(Identity.generate(), 1000, Date.now())); // true
 * ```
 */
export function signStakePledge(identity: Identity, amount: number, issuedAt: number): StakePledge {
  const unsigned = { v: STAKE_PLEDGE_VERSION, key: identity.publicKey, amount, issuedAt };
  return { ...unsigned, sig: identity.sign(stakePledgeSigningBytes(unsigned)) };
}

/** True when `value` is a well-formed pledge signed by its own key. Never throws. */
export function verifyStakePledge(value: unknown): value is StakePledge {
  const r = StakePledgeSchema.safeParse(value);
  if (!r.success) return false;
  return verifySignature(r.data.key, stakePledgeSigningBytes(r.data), r.data.sig);
}
