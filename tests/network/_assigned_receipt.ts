/**
 * A receipt this node (A) assigned — it forwarded the job, and its own signed assignment exists
 * nowhere else — and the ledger outcome it must have in a peer (C) that hears of it only through
 * A: the s60 tests that take A's validator, network or process down around the announcement
 * record it and read it the same way.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  type LedgerClock,
  type LedgerReads,
  ledgerReads,
  proveOn,
  type textJob,
} from "../actors/_validator_fixture.ts";
import type { LedgerNode } from "./_ledger_node.ts";

/**
 * `worker`'s receipt of `job` as A's forwarding port hands it to A's validator (`#checked`,
 * `NetworkInferencePort`: A's assignment, announced), asserted recorded.
 */
export async function recordAssigned(
  nodeA: Pick<LedgerNode, "validator">,
  a: Identity,
  worker: Identity,
  job: ReturnType<typeof textJob>,
): Promise<{ id: string; tokens: number }> {
  const { receipt } = await proveOn(job, worker);
  const handled = await nodeA.validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job,
    assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, a),
    origin: toHex(worker.publicKey),
    announce: true,
  });
  assert.equal(handled.recorded, true, "A records the receipt");
  return { id: receiptId(receipt), tokens: receipt.tokenCount };
}

/**
 * Once C's ledger recorded receipt `id` (or the shared limit went by, waiting for `what`: the
 * ledgers tell),
 * both windows close, A's (`validatorA()`, which may be restarted) and C's; the reads of both.
 */
export async function windowsClosed(
  clock: LedgerClock,
  validatorA: () => ActorRef<ValidatorMessage>,
  validatorC: ActorRef<ValidatorMessage>,
  id: string,
  what: string,
): Promise<{ readsA: LedgerReads; readsC: LedgerReads }> {
  const readsA = ledgerReads(validatorA, clock);
  const readsC = ledgerReads(() => validatorC, clock);
  // Every caller expects C to record it: waited for as long as any effect (a loaded machine).
  await eventually(async () => (await readsC.record(id)) !== undefined, what)
    .catch(() => {}); // lost: the ledgers tell below
  await readsA.closeWindow();
  await validatorC.ask({ type: "finalize" });
  return { readsA, readsC };
}

/**
 * After {@link windowsClosed}: the worker paid `tokens` × price in A, and in C under A's
 * assignment (C's record names A as the requester), the receipt final there.
 */
export async function assertPaidInCAsInA(
  { readsA, readsC }: { readsA: LedgerReads; readsC: LedgerReads },
  a: Identity,
  worker: Identity,
  id: string,
  tokens: number,
): Promise<void> {
  const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
  assert.equal((await readsA.account(worker.publicKey)).balance, paid, "paid in A");
  assert.equal(
    (await readsC.record(id))?.requester,
    toHex(a.publicKey),
    "C never heard of A's assignment",
  );
  assert.equal((await readsC.record(id))?.status, "final");
  assert.equal(
    (await readsC.account(worker.publicKey)).balance,
    paid,
    "the honest worker was not paid in a ledger that hears of the job only through A",
  );
}

/**
 * {@link windowsClosed} on A's and C's validators as they are now, then
 * {@link assertPaidInCAsInA}: the worker must be paid `tokens` × price in C, under A's
 * assignment, as in A.
 */
export async function paidInCAsInA(
  clock: LedgerClock,
  nodes: { nodeA: LedgerNode; nodeC: LedgerNode },
  a: Identity,
  worker: Identity,
  receipt: { id: string; tokens: number },
  what: string,
): Promise<void> {
  const { nodeA, nodeC } = nodes;
  const { id, tokens } = receipt;
  const reads = await windowsClosed(clock, () => nodeA.validator, nodeC.validator, id, what);
  await assertPaidInCAsInA(reads, a, worker, id, tokens);
}
