/**
 * What the ledger tests of a steering conviction (`ledger_steering_*_test.ts`) set up alike: the
 * keys (the ledger's owner, the worker, two accusers), the worker's steering evidence recorded in
 * a ledger — a paid receipt, then two pending ones — and an accuser's confirmed proof of one.
 *
 * @module
 */
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import type { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { assigned, receipt } from "./_ledger_fixtures.ts";

/** The ledger's owner, the worker it convicts, and the two accusers of its pending receipts. */
export interface SteeringKeys {
  owner: Identity;
  worker: Identity;
  a1: Identity;
  a2: Identity;
}

/** Fresh {@link SteeringKeys}. */
export function steeringKeys(): SteeringKeys {
  return {
    owner: Identity.generate(),
    worker: Identity.generate(),
    a1: Identity.generate(),
    a2: Identity.generate(),
  };
}

/** The worker's receipts a steering conviction names as its evidence. */
export interface SteeringEvidence {
  /** 1 token (credit 1): paid, its window closed; a conviction claws back 1 + 20. */
  paid: Receipt;
  /** 4 tokens, lock 80: pending. */
  caught: Receipt;
  /** 2 tokens, lock 40: pending. */
  other: Receipt;
}

/**
 * In `ledger` (on `clock`), with the worker's stake already there: `a1` and `a2` deposit 1,000
 * each, the worker's receipt `n` is recorded and paid (the clock moved past its window), then its
 * receipts `n + 1` (`caught`) and `n + 2` (`other`) are recorded, pending.
 */
export async function recordSteeringEvidence(
  ledger: Ledger,
  clock: { t: number },
  { worker, a1, a2 }: SteeringKeys,
  n: number,
): Promise<SteeringEvidence> {
  await ledger.deposit(a1.publicKey, 1_000);
  await ledger.deposit(a2.publicKey, 1_000);
  const paid = receipt(n, 1, worker);
  await ledger.recordReceipt(paid, assigned(paid));
  clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
  await ledger.finalizeDue();
  const caught = receipt(n + 1, 4, worker);
  const other = receipt(n + 2, 2, worker);
  await ledger.recordReceipt(caught, assigned(caught));
  await ledger.recordReceipt(other, assigned(other));
  return { paid, caught, other };
}

/** `by`'s confirmed fraud proof of receipt `r` (its hash: `hash` repeated), settled in `ledger`. */
export function settleProof(
  ledger: Ledger,
  r: Receipt,
  by: Identity,
  hash: string,
): ReturnType<Ledger["settleFraud"]> {
  return ledger.settleFraud({
    receiptId: receiptId(r),
    receipt: r,
    fraudProofHash: hash.repeat(32),
    validator: by.publicKey,
    confirmed: true,
    reason: "fingerprint_mismatch",
  });
}
