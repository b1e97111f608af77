/**
 * Review s60: the receipts part of a validator's catch-up (`actors/_catch_up_receipts.ts`), the
 * announcements of receipts this node assigned: bounded apart from the convictions and verdicts
 * (after them, never pushing them out), weighed per worker (one worker given many jobs pushes out
 * its own, not another worker's), kept on disk and read back only while the ledger holds the
 * receipt pending, dropped with its file once it left `pending`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CATCH_UP_RECEIPTS_DIR, CatchUp, MAX_CATCH_UP_RECEIPTS } from "../../actors/_catch_up.ts";
import type { AssignedReceiptItem } from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
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

Deno.test("review s60: one worker given more jobs than the catch-up keeps pushes out its own receipts, not another worker's", async () => {
  const requester = Identity.generate();
  const [flooder, other] = [Identity.generate(), Identity.generate()];
  const catchUp = new CatchUp();
  const [others] = await announcements(requester, other, 1);
  await catchUp.add(others, UNTIL);
  for (const item of await announcements(requester, flooder, MAX_CATCH_UP_RECEIPTS)) {
    await catchUp.add(item, UNTIL);
  }
  const kept = ids(catchUp.current(0));
  assert.equal(kept.length, MAX_CATCH_UP_RECEIPTS, "bounded");
  assert.ok(kept.includes(receiptId(others.receipt)), "the other worker's receipt was pushed out");
});

Deno.test("review s60: a kept receipt announcement is read back from disk while the ledger holds it pending, and dropped with its file once it left pending", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const requester = Identity.generate();
    const [first, second] = await announcements(requester, Identity.generate(), 2);
    const writer = new CatchUp(dir);
    await writer.add(first, UNTIL);
    await writer.add(second, UNTIL);
    const files = async () =>
      (await Array.fromAsync(Deno.readDir(`${dir}/${CATCH_UP_RECEIPTS_DIR}`))).length;
    assert.equal(await files(), 2, "kept on disk, one file each");

    // A new process: only the pending one is read back; the other's file is removed.
    const pendingOnly = (id: string) => id === receiptId(first.receipt) ? UNTIL : undefined;
    const reader = await CatchUp.read(dir, { now: () => 0, assignedPending: pendingOnly });
    assert.deepEqual(ids(reader.current(0, pendingOnly)), [receiptId(first.receipt)]);
    assert.equal(await files(), 1);

    // It leaves pending (final): dropped at the next look, its file removed.
    assert.deepEqual(ids(reader.current(0, () => undefined)), []);
    await reader.written();
    assert.equal(await files(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
