/**
 * Review s62: the peers' assigned receipts a relay passed on, kept in its catch-up
 * (`CatchUp.addRelayed`, `actors/_catch_up_receipts.ts`): bounded apart from this node's own
 * assignments (a flood of relayed receipts never pushes one of its own out), weighed per worker
 * (one worker's many receipts push out its own, not another worker's), sent after this node's own,
 * and dropped once the ledger no longer holds them pending.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CatchUp, MAX_RELAYED_CATCH_UP_RECEIPTS } from "../../actors/_catch_up.ts";
import type { AssignedReceiptItem } from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { proveOn, textJob } from "./_validator_fixture.ts";

const UNTIL = 1_000_000;

/**
 * `count` announcements of `worker`'s receipts (variants of one receipt: the catch-up keeps them
 * by id and weighs them by worker; nothing here checks signatures), assigned by `requester`.
 */
async function announcements(
  requester: Identity,
  worker: Identity,
  count: number,
): Promise<AssignedReceiptItem[]> {
  const job = textJob(requester, crypto.randomUUID());
  const { receipt } = await proveOn(job, worker);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return Array.from({ length: count }, (_, n) => ({
    kind: "assigned_receipt",
    receipt: { ...receipt, tokenCount: receipt.tokenCount + n } as Receipt,
    job,
    assignment,
  }));
}

const ids = (items: { kind: string; receipt?: Receipt }[]) =>
  items.filter((i) => i.kind === "assigned_receipt").map((i) => receiptId(i.receipt!));

Deno.test("review s62: a flood of one worker's relayed receipts pushes out its own, never another worker's nor this node's own assignment, which goes first", async () => {
  const [self, peer] = [Identity.generate(), Identity.generate()];
  const [flooder, other, mine] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const catchUp = new CatchUp();
  const [own] = await announcements(self, mine, 1);
  await catchUp.add(own, UNTIL);
  const [others] = await announcements(peer, other, 1);
  catchUp.addRelayed(others, UNTIL);
  const flood = await announcements(peer, flooder, MAX_RELAYED_CATCH_UP_RECEIPTS);
  for (const item of flood) catchUp.addRelayed(item, UNTIL);

  const sent = ids(catchUp.current(0));
  assert.equal(sent.length, 1 + MAX_RELAYED_CATCH_UP_RECEIPTS, "bounded apart from its own");
  assert.equal(sent[0], receiptId(own.receipt), "this node's own assignment goes first");
  assert.ok(sent.includes(receiptId(others.receipt)), "the other worker's receipt was pushed out");
  assert.ok(!sent.includes(receiptId(flood[0].receipt)), "the flooder's longest kept went");
  assert.equal(
    catchUp.workers(0).filter((key) => toHex(key) === toHex(other.publicKey)).length,
    1,
    "the relayed receipts' workers' pledges go on connect",
  );
});

Deno.test("review s62: a relayed receipt the ledger no longer holds pending is dropped from the catch-up", async () => {
  const [peer, worker] = [Identity.generate(), Identity.generate()];
  const catchUp = new CatchUp();
  const [first, second] = await announcements(peer, worker, 2);
  catchUp.addRelayed(first, UNTIL);
  catchUp.addRelayed(second, UNTIL);
  const pendingOnly = (id: string) => id === receiptId(first.receipt) ? UNTIL : undefined;
  assert.deepEqual(ids(catchUp.current(0, undefined, pendingOnly)), [receiptId(first.receipt)]);
  assert.deepEqual(ids(catchUp.current(0)), [receiptId(first.receipt)], "forgotten for good");
  assert.deepEqual(ids(catchUp.current(UNTIL + 1)), [], "past its window");
});
