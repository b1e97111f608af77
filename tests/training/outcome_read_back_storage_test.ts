/**
 * Who pays when storage cannot serve a round outcome's deltas to the training validator's audit of
 * an outcome it read back at start.
 *
 * A peer's outcome kept because the ledger did not answer is read back at the next start and taken
 * through the gate and its audit again (`training/_outcome_audits.ts`); the audit redoes the outer
 * step, and so fetches the round's deltas again from storage (`training/round_audit.ts`,
 * `RoundModels.getFile`). Storage may fail that read: a file not found, an ask past its timeout,
 * or bytes that are not the file asked for (`RoundModels.getFile` checks them against the file id:
 * storage's failure, `corrupt_chunk`). None of these is a verdict on the round or its coordinator:
 * none of its trainers is slashed or charged here, its coordinator is not benched, and nobody is
 * credited for an outcome this node did not check. The audit is kept and made again on the
 * validator's timers (`_ledger_retries.ts`: bounded tries, doubling waits); a storage that never
 * recovers ends with the outcome dropped after those tries, logged, and the round's honest
 * trainers unpaid in this ledger alone (the written cost). Before (stop 62), bytes that were not
 * the named delta were read as the coordinator's false claim (`delta_mismatch`: the model refused,
 * its honest signer benched for an hour for storage's fault). Storage that recovers:
 * `review_s62_outcome_storage_retry_test.ts`. Each test reads the ledger outcome after the
 * receipts' window closed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AskTimeoutError } from "../../actors/errors.ts";
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

const onNode = (label: string, test: (node: RoundLedger, timers: FakeTimers) => Promise<void>) => {
  const timers = new FakeTimers();
  return onRoundLedger(
    { name: `read-back-storage-${label}`, resumeOwnProofs: true, timers },
    (node) => test(node, timers),
  );
};

Deno.test("an outcome read back at start whose deltas storage never finds again is audited again on the validator's timers, then dropped after the bounded tries: none of its trainers slashed, none credited, its coordinator not benched", () =>
  onNode("not-found", async (node, timers) => {
    await readBackWithDeltas(
      node,
      timers,
      (file) => Promise.reject(new ChunkNotFoundError(file, "this node and its peers")),
    );
    await assertNoVerdict(node);
  }));

Deno.test("an outcome read back at start whose delta reads keep timing out in storage is audited again, then dropped after the bounded tries: none of its trainers slashed, none credited, its coordinator not benched", () =>
  onNode("timeout", async (node, timers) => {
    await readBackWithDeltas(
      node,
      timers,
      () => Promise.reject(new AskTimeoutError("node/storage", 60_000)),
    );
    await assertNoVerdict(node);
  }));

Deno.test("an outcome read back at start whose delta reads keep returning bytes that are not the file is storage's failure, not the coordinator's: audited again, dropped after the bounded tries, its coordinator not benched, none of its trainers slashed or credited", () =>
  onNode("garbage", async (node, timers) => {
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
