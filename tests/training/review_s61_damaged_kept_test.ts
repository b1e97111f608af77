/**
 * Review s61: what a training validator kept on disk for a ledger that did not answer (stop 60:
 * the claims, the peers' receipts, the round outcomes and credits, `training/_ledger_retries.ts`;
 * the peers' proofs whose intake went unanswered, `training/_unanswered_training_proofs.ts`) is
 * read back at the next start, untrusted. A file damaged meanwhile (cut short, not CBOR, CBOR of
 * the wrong shape) must cost only itself: the validator starts, drops it (a line in the log for
 * one that decodes, `a damaged kept … dropped`), and the folder no longer holds it once the owner
 * writes it again (the claims' at this very start).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { KEPT_TRAINING_CLAIMS_DIR } from "../../training/_claim_takeovers.ts";
import { KEPT_OUTCOMES_DIR } from "../../training/_outcome_audits.ts";
import { KEPT_TRAINING_RECEIPTS_DIR } from "../../training/_receipt_credits.ts";
import { UNANSWERED_TRAINING_PROOFS_DIR } from "../../training/_unanswered_training_proofs.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** The folders of what is kept for a ledger that did not answer, under the ledger's directory. */
const FOLDERS = [
  KEPT_TRAINING_CLAIMS_DIR,
  KEPT_OUTCOMES_DIR,
  KEPT_TRAINING_RECEIPTS_DIR,
  UNANSWERED_TRAINING_PROOFS_DIR,
];

/** Damaged files, by name (a proof hash, as the kept files are named). */
function damagedFiles(): Map<string, Uint8Array> {
  const whole = encodeCanonical({ body: { proof: { reason: "opening_missing" } }, origin: "ee" });
  return new Map([
    // Cut short (a disk that lost the file's tail).
    [`${"a1".repeat(32)}.cbor`, whole.subarray(0, Math.floor(whole.length / 2))],
    // Not CBOR at all.
    [`${"b2".repeat(32)}.cbor`, new TextEncoder().encode("\xff\xfe not cbor \x00\x01")],
    // CBOR of the wrong shape: an entry, but not of anything kept.
    [`${"c3".repeat(32)}.cbor`, encodeCanonical({ body: { x: 1 }, origin: 7, since: "then" })],
    // CBOR, not an entry.
    [`${"d4".repeat(32)}.cbor`, encodeCanonical([1, 2, 3])],
  ]);
}

Deno.test("review s61: damaged files among what the training validator kept for a ledger that did not answer (cut short, not CBOR, the wrong shape) do not stop its start: dropped, logged when they decode, the claims' folder cleared at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s61-damaged-kept-" });
  const system = new ActorSystem({ name: "s61-damaged-kept" });
  const log: string[] = [];
  try {
    const ledgerDir = join(dir, "ledger");
    for (const folder of FOLDERS) {
      await Deno.mkdir(join(ledgerDir, folder), { recursive: true });
      for (const [name, bytes] of damagedFiles()) {
        await Deno.writeFile(join(ledgerDir, folder, name), bytes);
      }
    }
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const { training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => 1_000_000,
      models,
      challenge: { log: (line) => log.push(line), endRetryMs: 5 },
      resumeOwnProofs: true,
    });
    // Started, and answering.
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0);
    for (const what of ["claim", "outcome", "receipt"]) {
      assert.ok(
        log.some((line) => line.includes(`a damaged kept ${what} dropped`)),
        `a damaged kept ${what} logged: ${JSON.stringify(log)}`,
      );
    }
    assert.ok(!log.some((line) => line.includes("not read back")), JSON.stringify(log));
    // The claims' folder is written at the start (`ClaimTakeovers.keepOnDisk`): nothing damaged left.
    const left = await Array.fromAsync(Deno.readDir(join(ledgerDir, KEPT_TRAINING_CLAIMS_DIR)));
    assert.deepEqual(left.map((entry) => entry.name), []);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
