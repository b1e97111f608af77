/**
 * Review s61: the announcement of a receipt this node assigned is written to the catch-up's disk
 * ahead of the ledger's record (`CatchUp.write`, `ValidatorActor`'s `#writeAhead`), so a process
 * killed right after the record still sends it (`tests/network/review_s61_catchup_crash_test.ts`).
 * Pinned here: what is written ahead is not sent before the ledger recorded it; its file goes if
 * the ledger did not record it; one whose record a crash of the validator cut off is kept at the
 * next start in the process only if the ledger has it; and a receipt the ledger refused (its
 * worker unstaked) leaves no file, then is kept once the worker's pledge has it recorded.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { CATCH_UP_RECEIPTS_DIR, CatchUp } from "../../actors/_catch_up.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type {
  AssignedReceiptItem,
  CatchUpItem,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS, proveOn, START, textJob } from "./_validator_fixture.ts";

const UNTIL = START + 600_000;

/** A receipt of `worker`'s for a fresh job of `requester`'s, with its signed assignment. */
async function assigned(requester: Identity, worker: Identity): Promise<AssignedReceiptItem> {
  const job = textJob(requester, crypto.randomUUID());
  const { receipt } = await proveOn(job, worker);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return { kind: "assigned_receipt", receipt, job, assignment };
}

/** The receipt ids with a file in `ledgerDir`'s catch-up receipts folder. */
async function files(ledgerDir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(`${ledgerDir}/${CATCH_UP_RECEIPTS_DIR}`)))
      .map((e) => e.name.replace(/\.cbor$/, ""));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

const sentIds = (items: CatchUpItem[]) =>
  items.flatMap((i) => i.kind === "assigned_receipt" ? [receiptId(i.receipt)] : []);

Deno.test("review s61: an announcement written ahead is on disk before the ledger's record and not sent until added; kept by add without a second write; its file removed when discarded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const requester = Identity.generate();
    const [item, other] = [
      await assigned(requester, Identity.generate()),
      await assigned(requester, Identity.generate()),
    ];
    const [id, otherId] = [receiptId(item.receipt), receiptId(other.receipt)];
    const catchUp = await CatchUp.of(dir, { now: () => START, assignedPending: () => UNTIL });
    await catchUp.write(item, UNTIL);
    await catchUp.write(other, UNTIL);
    assert.deepEqual((await files(dir)).sort(), [id, otherId].sort(), "written ahead");
    assert.deepEqual(sentIds(catchUp.current(START, () => UNTIL)), [], "sent before recorded");
    const written = await Deno.stat(`${dir}/${CATCH_UP_RECEIPTS_DIR}/${id}.cbor`);
    await catchUp.add(item, UNTIL);
    catchUp.discardAssigned(id); // kept: stays
    catchUp.discardAssigned(otherId); // the ledger did not record it: goes
    await catchUp.written();
    assert.deepEqual(await files(dir), [id]);
    assert.deepEqual(sentIds(catchUp.current(START, () => UNTIL)), [id]);
    const after = await Deno.stat(`${dir}/${CATCH_UP_RECEIPTS_DIR}/${id}.cbor`);
    assert.equal(after.ino, written.ino, "written twice");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s61: announcements written ahead of records a crash of the validator cut off are kept at its next start in the process if the ledger recorded them, their files removed if not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const requester = Identity.generate();
    const [recorded, lost] = [
      await assigned(requester, Identity.generate()),
      await assigned(requester, Identity.generate()),
    ];
    const id = receiptId(recorded.receipt);
    const ledger = new Map<string, number>();
    const options = { now: () => START, assignedPending: (r: string) => ledger.get(r) };
    const catchUp = await CatchUp.of(dir, options);
    await catchUp.write(recorded, UNTIL);
    await catchUp.write(lost, UNTIL);
    ledger.set(id, UNTIL); // recorded; then the validator crashed, before `add` or a discard
    const again = await CatchUp.of(dir, options);
    assert.equal(again, catchUp, "one catch-up per ledger directory in a process");
    assert.deepEqual(sentIds(again.current(START, options.assignedPending)), [id]);
    assert.deepEqual(await files(dir), [id], "the unrecorded one's file is gone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s61: a receipt A assigned that A's ledger refuses (its worker unstaked) leaves no catch-up file; once the worker's pledge has it recorded, assigned by A, it is kept and sent", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "s61-write-ahead" });
  try {
    const [a, worker] = [Identity.generate(), Identity.generate()];
    const clock = { t: START };
    const validator = await system.spawn<ValidatorMessage>({
      name: "a/validator",
      factory: () =>
        new ValidatorActor({
          identity: a,
          ledgerDir: dir,
          models: HONEST_MODELS,
          challengeProbability: 0,
          finalizeIntervalMs: 0,
          ledger: { now: () => clock.t },
        }),
    });
    const { receipt, job, assignment } = await assigned(a, worker);
    const id = receiptId(receipt);
    const handled = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      assignment,
      origin: toHex(worker.publicKey),
      announce: true,
    });
    assert.equal(handled.refusal, "insufficient_stake");
    await validator.ask({ type: "stats" }); // the removal queued behind it
    await eventually(async () => (await files(dir)).length === 0, "the file written ahead to go");
    assert.deepEqual(sentIds(await validator.ask<CatchUpItem[]>({ type: "catch_up" })), []);

    const pledge = signStakePledge(worker, 1_000_000, 1);
    assert.equal(await validator.ask({ type: "pledge", pledge, origin: "local" }), true);
    await eventually(
      async () =>
        (await validator.ask<{ requester?: string }>({ type: "receipt_status", receiptId: id }))
          ?.requester === toHex(a.publicKey),
      "the held receipt to be recorded once the pledge came",
    );
    assert.deepEqual(sentIds(await validator.ask<CatchUpItem[]>({ type: "catch_up" })), [id]);
    await eventually(async () => (await files(dir)).includes(id), "its file to be kept");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
