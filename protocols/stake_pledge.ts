/**
 * Stake pledges: a key's signed statement that it puts `amount` of stake behind its work.
 *
 * A ledger records a receipt only when its worker has free stake to lock against it, so every node
 * that settles a worker's receipts must know that worker's stake. Until Veriflow settles on a
 * chain, the stake is what the worker pledges: each node records a key's pledge once (the first it
 * sees) and slashes it on proven fraud. A second pledge of the same key that differs is proof that
 * the key told ledgers two stakes: it convicts the key of pledge equivocation and forfeits its
 * stake in every ledger that holds both (`proof/_ledger_pledges.ts`), so a slashed worker cannot
 * refill its stake by pledging again, and a key gains nothing by pledging one amount here and
 * another there. An honest node signs one pledge, ever (`node/node_pledge.ts`). The pledge is
 * signed so nobody can pledge — or refuse to pledge — in another key's name; what a pledge is worth
 * outside the network is the settlement layer's question, not this one's.
 *
 * A pledge costs its signer a key pair and every ledger that records it about 380 bytes of log
 * for good, so what one peer connection may bring a ledger is budgeted (a token bucket per
 * connection, `network/pledge_budget.ts`): {@link PLEDGE_RECEIVE_BURST} at once, then one per
 * {@link PLEDGE_RECEIVE_REFILL_MS}. A node sends each peer at most half of that
 * ({@link PLEDGE_SEND_BURST}, one per {@link PLEDGE_SEND_REFILL_MS}), so an honest sender never
 * meets the receiver's limit, whatever the delays between them.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { type Identity, verifySignature } from "./identity.ts";

/** Version of the pledge format. */
export const STAKE_PLEDGE_VERSION = 1;
const STAKE_DOMAIN = "veriflow/stake/v1";

/**
 * Pledges a ledger takes from one peer connection at once. Twice what an honest node sends
 * ({@link PLEDGE_SEND_BURST}), so clock skew and bunching on the way never make an honest peer
 * look like a flood; a flood of fresh keys is recorded this far, then refused
 * (`pledge_budget_exceeded`) and, past the connection's refusal limit, disconnected.
 */
export const PLEDGE_RECEIVE_BURST = 128;
/**
 * Then one more pledge per this many ms per connection (10 a minute): about 14,400 a day, 5 MB of
 * ledger, for a peer that paces itself exactly at the limit for a whole day on one connection.
 */
export const PLEDGE_RECEIVE_REFILL_MS = 6_000;
/**
 * Pledges a node sends one peer at once: its own, those it pushes on connect, those it passes on
 * (gossip) and those the peer turned out to need. Under the 100 refusals in 10 s a peer tolerates
 * (`DEFAULT_MAX_REFUSALS`), so even a peer that offers `validation/1` and handles no pledges is
 * never made to hang up by the pledges it is sent.
 */
export const PLEDGE_SEND_BURST = 64;
/** Then one more per this many ms per peer (5 a minute): half the receiver's rate. */
export const PLEDGE_SEND_REFILL_MS = 12_000;
/**
 * Room kept back from gossip and the connect push for pledges the peer turned out to need (it
 * refused a receipt we announced with `insufficient_stake`): a flood passed on through this node
 * cannot use up the room an honest worker's pledge needs. The pledge sent ahead of a fraud proof
 * may use all of it, the one ahead of a "proof withheld" claim half (`network/pledge_sync.ts`,
 * `CLAIM_PLEDGE_RESERVE`).
 */
export const PLEDGE_SEND_RESERVE = 16;
/**
 * Most pledges of other keys pushed to a peer on connect (after this node's own): the keys active
 * in this node's ledger first (open receipts, a balance, a slash), then the most recent. The rest
 * the peer gets when it needs them ({@link PLEDGE_SEND_RESERVE}).
 */
export const PLEDGES_PUSHED_ON_CONNECT = PLEDGE_SEND_BURST - PLEDGE_SEND_RESERVE - 1;

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
