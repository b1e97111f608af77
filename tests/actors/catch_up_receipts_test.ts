/**
 * The receipts part of a validator's catch-up (`actors/_catch_up_receipts.ts`): the announcements
 * of receipts this node assigned and of peers' assigned receipts a relay passed on, each bounded
 * apart and weighed per worker, written ahead of the ledger's record, kept on disk and read back
 * only while the ledger holds the receipt pending.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  CATCH_UP_RECEIPTS_DIR,
  CatchUp,
  MAX_CATCH_UP_RECEIPTS,
  MAX_RELAYED_CATCH_UP_RECEIPTS,
} from "../../actors/_catch_up.ts";
import type {
  AssignedReceiptItem,
  CatchUpItem,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { HONEST_MODELS, proveOn, START, textJob } from "./_validator_fixture.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";

// -------------------------------------------------------------------------------------------------
// The receipts part of a validator's catch-up (`actors/_catch_up_receipts.ts`), the announcements
// of receipts this node assigned: bounded apart from the convictions and verdicts (after them,
// never pushing them out), weighed per worker (one worker given many jobs pushes out its own, not
// another worker's), kept on disk and read back only while the ledger holds the receipt pending,
// dropped with its file once it left `pending`.

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

Deno.test("one worker given more jobs than the catch-up keeps pushes out its own receipts, not another worker's", async () => {
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

Deno.test("a kept receipt announcement is read back from disk while the ledger holds it pending, and dropped with its file once it left pending", async () => {
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

// -------------------------------------------------------------------------------------------------
// The announcement of a receipt this node assigned is written to the catch-up's disk ahead of the
// ledger's record (`CatchUp.write`, `ValidatorActor`'s `#writeAhead`), so a process killed right
// after the record still sends it (`tests/network/catch_up_restart_test.ts`). Pinned here:
// what is written ahead is not sent before the ledger recorded it; its file goes if the ledger did
// not record it; one whose record a crash of the validator cut off is kept at the next start in the
// process only if the ledger has it; and a receipt the ledger refused (its worker unstaked) leaves
// no file, then is kept once the worker's pledge has it recorded.

const WRITE_UNTIL = START + 600_000;

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

Deno.test("an announcement written ahead is on disk before the ledger's record and not sent until added; kept by add without a second write; its file removed when discarded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const requester = Identity.generate();
    const [item, other] = [
      await assigned(requester, Identity.generate()),
      await assigned(requester, Identity.generate()),
    ];
    const [id, otherId] = [receiptId(item.receipt), receiptId(other.receipt)];
    const catchUp = await CatchUp.of(dir, { now: () => START, assignedPending: () => WRITE_UNTIL });
    await catchUp.write(item, WRITE_UNTIL);
    await catchUp.write(other, WRITE_UNTIL);
    assert.deepEqual((await files(dir)).sort(), [id, otherId].sort(), "written ahead");
    assert.deepEqual(
      sentIds(catchUp.current(START, () => WRITE_UNTIL)),
      [],
      "sent before recorded",
    );
    const written = await Deno.stat(`${dir}/${CATCH_UP_RECEIPTS_DIR}/${id}.cbor`);
    await catchUp.add(item, WRITE_UNTIL);
    catchUp.discardAssigned(id); // kept: stays
    catchUp.discardAssigned(otherId); // the ledger did not record it: goes
    await catchUp.written();
    assert.deepEqual(await files(dir), [id]);
    assert.deepEqual(sentIds(catchUp.current(START, () => WRITE_UNTIL)), [id]);
    const after = await Deno.stat(`${dir}/${CATCH_UP_RECEIPTS_DIR}/${id}.cbor`);
    assert.equal(after.ino, written.ino, "written twice");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("announcements written ahead of records a crash of the validator cut off are kept at its next start in the process if the ledger recorded them, their files removed if not", async () => {
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
    await catchUp.write(recorded, WRITE_UNTIL);
    await catchUp.write(lost, WRITE_UNTIL);
    ledger.set(id, WRITE_UNTIL); // recorded; then the validator crashed, before `add` or a discard
    const again = await CatchUp.of(dir, options);
    assert.equal(again, catchUp, "one catch-up per ledger directory in a process");
    assert.deepEqual(sentIds(again.current(START, options.assignedPending)), [id]);
    assert.deepEqual(await files(dir), [id], "the unrecorded one's file is gone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a receipt A assigned that A's ledger refuses (its worker unstaked) leaves no catch-up file; once the worker's pledge has it recorded, assigned by A, it is kept and sent", async () => {
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
          // A fake clock (it starts in 1970): real receipts are decades "ahead" of it.
          maxReceiptLeadMs: Number.POSITIVE_INFINITY,
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

// -------------------------------------------------------------------------------------------------
// The peers' assigned receipts a relay passed on, kept in its catch-up (`CatchUp.addRelayed`,
// `actors/_catch_up_receipts.ts`): bounded apart from this node's own assignments (a flood of
// relayed receipts never pushes one of its own out), weighed per worker (one worker's many receipts
// push out its own, not another worker's), sent after this node's own, and dropped once the ledger
// no longer holds them pending.

Deno.test("a flood of one worker's relayed receipts pushes out its own, never another worker's nor this node's own assignment, which goes first", async () => {
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

Deno.test("a relayed receipt the ledger no longer holds pending is dropped from the catch-up", async () => {
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
