/**
 * Review s52: the challenge coin of a receipt the ledger refuses must not show. The
 * ValidatorActor kept a drawn receipt on disk (`drawn-challenges/`, a durable write: a temporary
 * file, `fsync`, a rename, a directory `fsync`) before asking the ledger to record it, and removed
 * it again when the ledger refused it. So a refusal came measurably later (two durable file
 * operations) exactly when the coin had drawn the receipt. Any peer may announce a receipt, and a
 * receipt's id leaves out its timings: a worker whose stake here is all locked (or whose job
 * another key's unassigned receipt holds) could announce each variant of a cheat's receipt (other
 * fingerprint bits, another commitment root, another id), be refused every time, time the
 * refusals, and learn without committing to anything which variants this validator would
 * challenge; then, once its stake is free, send the variant no validator draws, re-signed with
 * fresh timings (the same id): the cheat never challenged. Now nothing depends on the coin before
 * the ledger has taken the receipt: the draw is kept only for a receipt the ledger records.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { DRAWN_CHALLENGES_DIR } from "../../actors/_receipt_files.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { pathExists } from "../../storage/path_exists.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

Deno.test("review s52: a receipt the ledger refuses does no work that depends on its coin (nothing of its draw is written); recorded later, it is drawn and the cheat slashed", () =>
  inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, "s52-probe");
    const { receipt, proof } = await proveOn(job, worker, f.otherSeed);
    const id = receiptId(receipt);
    const served = signServedProof(id, proof, worker);
    const system = new ActorSystem({ name: "s52-coin-probe" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        // Every receipt is drawn: a refusal that depends on the coin shows here.
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve<ServedProof | undefined>(served) },
      });
      const lock = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
        DEFAULT_ECONOMICS.slashMultiplier;
      // Staked here, but less than the receipt locks: refused, the probe the worker times.
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: lock - 1 });
      for (let probe = 0; probe < 3; probe++) {
        const handled = await announceAssigned(validator, receipt, job, requester);
        assert.deepEqual([handled.recorded, handled.refusal], [false, "insufficient_stake"]);
      }
      assert.equal(
        await pathExists(join(ledgerDir, DRAWN_CHALLENGES_DIR)),
        false,
        "the draw of a refused receipt was written (and removed): its refusal took longer",
      );
      // With its stake free, the same receipt (one id, one coin) is recorded, drawn and checked.
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
      await handled.result;
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      assert.equal((await reads.record(id))?.status, "fraud");
      assert.equal((await reads.account(worker.publicKey)).balance, 0, "the cheat is not paid");
    } finally {
      await system.shutdown();
    }
  }));
