/**
 * Review, stop 45: a worker's proof data between its receipt and the challenge.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { SteeringRecord } from "../../proof/steering.ts";
import { runChallenge } from "../../actors/_run_challenge.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";

Deno.test("takeover: the worker is asked for its proof data when the challenge opens, not after the validator's model has loaded", async () => {
  // A takeover can open at the very end of the receipt's window, and the worker keeps its proof
  // data for the window and the 60 s deadline "from the challenge" (`MIN_PROOF_RETENTION_MS`),
  // no more. A fetch that starts only once the model has loaded (seconds to minutes, the first
  // time) reaches the worker after it may rightly have deleted the data: its "none" on its own
  // connection is final, and the honest worker is slashed for withholding.
  const worker = Identity.generate();
  const validator = Identity.generate();
  const job = scriptedJob("takeover-late", 8);
  const { receipt, proof } = await proveJob(job, scriptedChunks(5), worker);
  const events: string[] = [];
  const loaded = Promise.withResolvers<undefined>();
  const result = runChallenge(receipt, job, {
    models: {
      get: async () => {
        events.push("model asked");
        const model = await loaded.promise; // a slow load (the model is not held here: undefined)
        events.push("model loaded");
        return model;
      },
    },
    identity: validator,
    source: {},
    steering: new SteeringRecord(),
    enqueue: (task) => task(),
    proof: () => {
      events.push("proof asked");
      return Promise.resolve(signServedProof(receiptId(receipt), proof, worker));
    },
    signal: new AbortController().signal,
    takeover: true,
  });
  // Let the challenge run as far as it can while the model loads.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  loaded.resolve(undefined);
  const { verdict } = await result;
  assert.equal(verdict.reason, "proof_served", `the served data answers the claim (${events})`);
  assert.ok(
    events.indexOf("proof asked") !== -1 &&
      events.indexOf("proof asked") < events.indexOf("model loaded"),
    `the worker is asked before the model has loaded (events: ${events})`,
  );
});
