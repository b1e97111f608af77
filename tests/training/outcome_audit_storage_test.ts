/**
 * Storage failing the audit of a peer's round outcome (a file not found, a timeout, bytes that are
 * not the file): never a verdict on the round or its coordinator; the audit is kept and made again
 * on the validator's timers, also for an outcome read back at start.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import type { PutFileResult } from "../../storage/file_store.ts";
import { storedFileId } from "../../training/_file_id.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { MAX_END_ATTEMPTS } from "../../training/_challenge_endings.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  assertNobodyPaidNorSlashed,
  assertUnpaidAfterWindow,
  type DeltaRead,
  onRoundLedger,
  type RoundLedger,
} from "./_round_ledger.ts";
import { AskTimeoutError } from "../../actors/errors.ts";

// ------------------------------------------------------------------------------------------------
// A storage failure during the audit of a peer's round outcome is not a verdict, and does not lose
// the outcome for good.
//
// The audit (`training/round_audit.ts`) fetches the round's deltas from storage. Before, a read
// that failed ended the audit without a verdict, but the outcome was already marked seen and its
// audit budgets charged at the gate: another relay's copy was dropped, nothing took it again, and
// the round's honest trainers, paid in every other ledger, stayed unpaid in this one even after
// storage recovered. Bytes storage returned that were not the file were read as the coordinator's
// delta: the model refused `delta_mismatch` and its honest coordinator benched for an hour for
// storage's fault. Now `RoundModels.getFile` checks the bytes against the file id (storage's
// failure, `corrupt_chunk`), and an audit storage failed is kept and made again as the ledger
// retries are (`training/_ledger_retries.ts`: bounded tries, doubling waits on the validator's
// timers, on disk beside the ledger).
//
// Each test reads the ledger outcome: who is credited and paid, who is slashed or benched.
// ------------------------------------------------------------------------------------------------

/** The first wait before an audit storage failed is made again, ms (the fixture's). */
const RETRY_MS = 20;

/** Fake timers that remember the length of every wait armed on them. */
class RecordingTimers extends FakeTimers {
  /** The waits armed, ms, in order. */
  readonly waits: number[] = [];

  override setTimeout(callback: () => void, ms: number): unknown {
    this.waits.push(ms);
    return super.setTimeout(callback, ms);
  }
}

const onNode = (
  label: string,
  test: (node: RoundLedger, timers: RecordingTimers) => Promise<void>,
) => {
  const timers = new RecordingTimers();
  return onRoundLedger(
    { name: `s62-storage-retry-${label}`, resumeOwnProofs: true, retryMs: RETRY_MS, timers },
    (node) => test(node, timers),
  );
};

/** Storage does not find the round's deltas. */
const notFound = (file: string) =>
  Promise.reject(new ChunkNotFoundError(file, "this node and its peers"));

/** Storage returns bytes that are not the round's delta files. */
const garbage = (file: string) =>
  Promise.resolve(new TextEncoder().encode(`not the bytes of ${file}`));

/**
 * A peer's outcome handed over; resolves once its first audit ended (on storage's failure, or,
 * as before stop 62 for bytes that are not the file, refused).
 */
async function firstAuditFails(node: RoundLedger): Promise<void> {
  await node.send(); // a peer's
  await eventually(
    () => node.log.some((l) => l.includes("not adopted") || l.includes("refused:")),
    "the first audit to end",
  );
}

/** The audit's try again armed on the validator's timers: fire it. */
async function fireRetry(timers: FakeTimers): Promise<void> {
  await eventually(() => timers.armed.size > 0, "the audit's try again armed on the timers");
  timers.fireAll();
}

/** Nobody benched, the model not refused: no verdict was signed against the round. */
async function assertNobodyBenched(node: RoundLedger): Promise<void> {
  const stats = await node.stats();
  assert.deepEqual(stats.refused, [], "the round's model not refused");
  assert.deepEqual(stats.outcomesRefused, [], "its coordinator's outcomes not refused");
  assert.ok(!node.log.some((l) => l.includes("failed its audit")), "its coordinator not benched");
}

Deno.test("a peer's outcome whose audit storage fails once is audited again on the validator's timers once storage recovers: its honest trainers credited and paid in this ledger, its coordinator not benched", () =>
  onNode("not-found-once", async (node, timers) => {
    node.deltaReads(notFound);
    await firstAuditFails(node);
    await assertNobodyPaidNorSlashed(node);
    node.deltaReads(undefined); // storage recovers
    await fireRetry(timers);
    assert.equal(timers.waits[0], RETRY_MS, "the first wait is the validator's endRetryMs");
    await assertNobodyBenched(node);
    await node.assertPaid();
  }));

Deno.test("bytes from storage that are not the delta file are storage's failure, not the coordinator's: not benched, its model not refused, and once storage recovers the round's honest trainers are credited and paid here", () =>
  onNode("garbage-once", async (node, timers) => {
    node.deltaReads(garbage);
    await firstAuditFails(node);
    await assertNobodyBenched(node);
    assert.ok(
      node.log.some((l) => l.includes("do not match the CID")),
      `logged as storage's bytes that are not the file: ${node.log.join("\n")}`,
    );
    await assertNobodyPaidNorSlashed(node);
    node.deltaReads(undefined); // storage recovers
    await fireRetry(timers);
    await assertNobodyBenched(node);
    await node.assertPaid();
  }));

Deno.test("a peer's outcome whose audit storage never serves is audited again after doubling waits on the validator's timers, then dropped after the bounded tries, logged: nobody credited, paid or slashed, its coordinator not benched", () =>
  onNode("never", async (node, timers) => {
    node.deltaReads(notFound);
    await firstAuditFails(node);
    const dropped = `dropped, storage failed in its audit (${MAX_END_ATTEMPTS} tries)`;
    await eventually(() => {
      if (node.log.some((l) => l.includes(dropped))) return true;
      timers.fireAll();
      return false;
    }, "the outcome dropped after its tries");
    assert.deepEqual(
      timers.waits,
      Array.from({ length: MAX_END_ATTEMPTS - 1 }, (_, i) => RETRY_MS * 2 ** i),
      "one wait per try again, doubling",
    );
    assert.ok(
      node.log.some((l) => l.includes(dropped) && l.includes("go unpaid in this ledger")),
      "the drop says who pays",
    );
    await assertNobodyBenched(node);
    await assertNobodyPaidNorSlashed(node);
    await assertUnpaidAfterWindow(node);
  }));

Deno.test("a peer's outcome whose audit storage failed is kept on disk: the training validator restarted before storage recovers audits it again from there, and its honest trainers are credited and paid here", () =>
  onNode("restart", async (node, timers) => {
    node.deltaReads(notFound);
    await firstAuditFails(node);
    await eventually(
      () => node.log.some((l) => l.includes("kept, storage failed in its audit")),
      "the audit kept to make again",
    );
    await node.restartTraining();
    node.deltaReads(undefined); // storage recovers
    await eventually(() => {
      timers.fireAll();
      return node.log.some((l) => l.includes("reproduced, served"));
    }, "the outcome read back and reproduced");
    await assertNobodyBenched(node);
    await node.assertPaid();
  }));

Deno.test("the file id a round's bytes are checked against is the one storage gives them: one chunk, several, and none", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s62-file-id-" });
  const system = new ActorSystem({ name: "s62-file-id" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir }),
    });
    for (const size of [0, 1_000, 600_000]) {
      const bytes = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
      const put = unwrapReply<PutFileResult>(
        await storage.ask({ type: "put_bytes", bytes, name: `f${size}` }),
      );
      assert.equal(await storedFileId(bytes), put.cid, `${size} bytes`);
      const longer = new Uint8Array(size + 1);
      longer.set(bytes);
      assert.notEqual(await storedFileId(longer), put.cid, `${size} bytes and one more`);
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// Who pays when storage cannot serve a round outcome's deltas to the training validator's audit of
// an outcome it read back at start.
//
// A peer's outcome kept because the ledger did not answer is read back at the next start and taken
// through the gate and its audit again (`training/_outcome_audits.ts`); the audit redoes the outer
// step, and so fetches the round's deltas again from storage (`training/round_audit.ts`,
// `RoundModels.getFile`). Storage may fail that read: a file not found, an ask past its timeout, or
// bytes that are not the file asked for (`RoundModels.getFile` checks them against the file id:
// storage's failure, `corrupt_chunk`). None of these is a verdict on the round or its coordinator:
// none of its trainers is slashed or charged here, its coordinator is not benched, and nobody is
// credited for an outcome this node did not check. The audit is kept and made again on the
// validator's timers (`_ledger_retries.ts`: bounded tries, doubling waits); a storage that never
// recovers ends with the outcome dropped after those tries, logged, and the round's honest trainers
// unpaid in this ledger alone (the written cost). Before, bytes that were not the named delta were
// read as the coordinator's false claim (`delta_mismatch`: the model refused, its honest signer
// benched for an hour for storage's fault). Storage that recovers: the tests above. Each test reads
// the ledger outcome after the receipts' window closed.
// ------------------------------------------------------------------------------------------------

/** The log line of the outcome dropped once its audit's tries are spent. */
const DROPPED = `dropped, storage failed in its audit (${MAX_END_ATTEMPTS} tries)`;

/**
 * On a round ledger whose training validator keeps what it keeps beside the ledger
 * ({@link onRoundLedger}): a peer's outcome kept at the gate for a stopped ledger, the training
 * validator restarted, and, while storage answers every read of the round's delta files with
 * `read`, the ledger started again: the outcome read back goes through the gate and its audit
 * again, each try after a wait the test fires. Resolves once the outcome was dropped, its tries
 * spent; storage never recovers.
 * @returns How many reads of the deltas storage answered.
 */
async function readBackWithDeltas(
  node: RoundLedger,
  timers: FakeTimers,
  read: DeltaRead,
): Promise<number> {
  await node.stopLedger();
  await node.send(); // a peer's
  await eventually(
    () => node.log.some((l) => l.includes("kept, the ledger did not answer")),
    "the outcome kept at the gate",
  );
  await node.restartTraining();
  let reads = 0;
  node.deltaReads((file) => {
    reads++;
    return read(file);
  });
  await node.startLedger();
  await eventually(() => {
    if (node.log.some((l) => l.includes(DROPPED))) return true;
    timers.fireAll();
    return false;
  }, "the audit read back to be dropped after its tries");
  assert.ok(reads > 0, "the audit read back fetched the deltas again");
  return reads;
}

/** Every try of the audit failed on storage: no verdict, nobody paid, its coordinator not benched. */
async function assertNoVerdict(node: RoundLedger): Promise<void> {
  await assertNobodyPaidNorSlashed(node);
  const stats = await node.stats();
  assert.deepEqual(stats.refused, [], "no verdict on the round: its model not refused");
  assert.deepEqual(stats.outcomesRefused, [], "its coordinator not benched");
  assert.deepEqual(stats.unverified, [], "nor taken unchecked");
  assert.ok(!node.log.some((l) => l.includes("failed its audit")), "nobody benched");
  const kept = node.log.filter((l) => l.includes("kept, storage failed in its audit"));
  assert.equal(kept.length, MAX_END_ATTEMPTS - 1, "each try but the last kept it for the next");
  await assertUnpaidAfterWindow(node);
}

const onNodeReadback = (
  label: string,
  test: (node: RoundLedger, timers: FakeTimers) => Promise<void>,
) => {
  const timers = new FakeTimers();
  return onRoundLedger(
    { name: `read-back-storage-${label}`, resumeOwnProofs: true, timers },
    (node) => test(node, timers),
  );
};

Deno.test("an outcome read back at start whose deltas storage never finds again is audited again on the validator's timers, then dropped after the bounded tries: none of its trainers slashed, none credited, its coordinator not benched", () =>
  onNodeReadback("not-found", async (node, timers) => {
    await readBackWithDeltas(
      node,
      timers,
      (file) => Promise.reject(new ChunkNotFoundError(file, "this node and its peers")),
    );
    await assertNoVerdict(node);
  }));

Deno.test("an outcome read back at start whose delta reads keep timing out in storage is audited again, then dropped after the bounded tries: none of its trainers slashed, none credited, its coordinator not benched", () =>
  onNodeReadback("timeout", async (node, timers) => {
    await readBackWithDeltas(
      node,
      timers,
      () => Promise.reject(new AskTimeoutError("node/storage", 60_000)),
    );
    await assertNoVerdict(node);
  }));

Deno.test("an outcome read back at start whose delta reads keep returning bytes that are not the file is storage's failure, not the coordinator's: audited again, dropped after the bounded tries, its coordinator not benched, none of its trainers slashed or credited", () =>
  onNodeReadback("garbage", async (node, timers) => {
    await readBackWithDeltas(
      node,
      timers,
      (file) => Promise.resolve(new TextEncoder().encode(`not the bytes of ${file}`)),
    );
    assert.ok(
      node.log.some((l) => l.includes("corrupt_chunk") || l.includes("do not match the CID")),
      `logged as storage's bytes that are not the file: ${node.log.join("\n")}`,
    );
    await assertNoVerdict(node);
  }));
