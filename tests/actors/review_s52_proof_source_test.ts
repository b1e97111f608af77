/**
 * Review s52: a validator embedded with its own way to the worker's proof data
 * (`ChallengeSource.proof`, the library's hook) blamed the worker for that hook's failure. An
 * error thrown by it counted as "withheld", the worker's fault: a library user's transport
 * outage slashed honest workers. The hook's throw is this node's gap, as no route to the worker
 * is (`inconclusive / worker_unreachable`: unpaid, not slashed); its answer `undefined` is still
 * the worker's withholding.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
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

/** What the hook does: throw (its own failure) or answer nothing (the worker withheld). */
type Hook = "throws" | "answers_nothing";

/** Where an honest worker's receipt, and its worker, stand after the window. */
interface Outcome {
  verdict: string;
  status: string | undefined;
  account: { balance: number; stake: number; locked: number };
}

/** An honest worker's receipt challenged by a validator whose proof hook does `hook`. */
async function challengedThrough(hook: Hook): Promise<Outcome> {
  let outcome: Outcome | undefined;
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const worker = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, `s52-source-${hook}`);
    const { receipt } = await proveOn(job, worker, f.honest);
    const system = new ActorSystem({ name: `s52-proof-source-${hook}` });
    try {
      const validator = await spawnValidator(system, {
        identity: Identity.generate(),
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: {
          proof: () =>
            hook === "throws"
              ? Promise.reject(new Error("the embedding's own transport is down"))
              : Promise.resolve<ServedProof | undefined>(undefined),
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
      const result = await handled.result;
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      outcome = {
        verdict: `${result?.verdict.outcome}/${result?.verdict.reason}`,
        status: (await reads.record(receiptId(receipt)))?.status,
        account: await reads.account(worker.publicKey),
      };
    } finally {
      await system.shutdown();
    }
  });
  return outcome!;
}

Deno.test("review s52: a proof hook that throws is the validator's own gap: inconclusive (worker_unreachable), the honest worker unpaid but not slashed", async () => {
  const { verdict, status, account } = await challengedThrough("throws");
  assert.equal(verdict, "inconclusive/worker_unreachable");
  assert.equal(status, "unpaid");
  assert.deepEqual(account, { balance: 0, stake: 10_000, locked: 0 }, "not slashed");
});

Deno.test("review s52: a proof hook that answers nothing is still the worker's withholding: slashed", async () => {
  const { verdict, account } = await challengedThrough("answers_nothing");
  assert.equal(verdict, "invalid/proof_unavailable");
  assert.ok(account.stake < 10_000, `withheld: slashed (stake ${account.stake})`);
});
