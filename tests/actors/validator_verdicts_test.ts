/**
 * A program reads the verdicts its validator's ledger holds about a receipt (`verdicts`): the one
 * its own challenge signed, with the ledger's outcome beside it (who was slashed), and none about
 * a receipt nobody judged.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
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

const STAKE = 10_000;

Deno.test("verdicts: the verdict a challenge signed about a receipt, beside the ledger's slash; none about a receipt not judged", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const clock = { t: START };
    const served = new Map<string, ServedProof>();
    const system = new ActorSystem({ name: "verdicts-test" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: (receipt) => Promise.resolve(served.get(receiptId(receipt))) },
      });
      assert.equal(
        await validator.ask({ type: "pledge", pledge: signStakePledge(worker, STAKE, 1) }),
        true,
      );
      // The worker runs another model under the honest model's CID.
      const job = textJob(requester, "cheat");
      const proved = await proveOn(job, worker, f.otherSeed);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const ledger = ledgerReads(() => validator, clock);
      assert.deepEqual(await validator.ask<Verdict[]>({ type: "verdicts", receiptId: id }), []);

      assert.equal(
        (await announceAssigned(validator, proved.receipt, job, requester)).challenged,
        true,
      );
      await ledger.drained();

      const verdicts = await validator.ask<Verdict[]>({ type: "verdicts", receiptId: id });
      assert.deepEqual(
        verdicts.map((v) => [v.subjectId, v.outcome, toHex(v.validator), toHex(v.target)]),
        [[id, "fraud", toHex(me.publicKey), toHex(worker.publicKey)]],
      );
      // The ledger's outcome, as the verdict says: the receipt is fraud, the worker slashed.
      assert.equal((await ledger.record(id))?.status, "fraud");
      assert.ok((await ledger.account(worker.publicKey)).stake < STAKE, "the worker is slashed");

      // An honest receipt, not yet challenged (its announcement is the first thing heard of it).
      const honest = await proveOn(textJob(requester, "honest"), worker);
      const honestId = receiptId(honest.receipt);
      assert.deepEqual(
        await validator.ask<Verdict[]>({ type: "verdicts", receiptId: honestId }),
        [],
      );
    } finally {
      await system.shutdown();
    }
  });
});
