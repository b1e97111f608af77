/**
 * A worker that signed a cancelled receipt for a job (its requester's explicit cancel at k) keeps
 * refusing the job after another worker's assigned receipt took it (the client's retry, with the
 * same nonce, finished elsewhere), after a restart too: `job_recorded` (the guard the
 * `InferenceActor` asks once its in-memory list is gone) answers from the ledger's kept claim of
 * this node's superseded receipt (review s77 F2: it answered false, the node ran the job again,
 * and its second receipt was slashed as equivocation; announced with a new assignment, the
 * honest finisher lost its pay too). The node refuses the job as `duplicate_job` before signing:
 * nobody is slashed, the finisher keeps its pay.
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { InferenceActor, type InferenceMessage, submitJob } from "../../actors/inference_actor.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { manualStream } from "../proof/_models.ts";
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

/** Each worker's stake: far more than one job locks. */
const STAKE = 10_000;
/** Tokens the cancelling requester held (the job has 8). */
const K = 3;

Deno.test("a node whose cancelled receipt was superseded by another worker's assigned one still refuses the job (duplicate_job), after a validator restart too: it is not slashed, the finisher keeps its pay", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate(); // the worker whose requester cancelled at K
    const finisher = Identity.generate();
    const router = Identity.generate(); // the requester: the forwarding node
    const job = textJob(router, "cancel-guard-superseded");
    const id = jobId(job);
    const ids = f.honest.tokenizer.encode(job.prompt);
    const { receipt: cancelled } = await proveJob(
      job,
      manualStream(() => f.honest, ids, job.params),
      me,
      { end: () => ({ reason: "cancelled", tokens: K }) },
    );
    assertEquals(cancelled.end, "cancelled");
    const { receipt: whole } = await proveOn(job, finisher);
    const guard = (validator: ActorRef<ValidatorMessage>) =>
      validator.ask<boolean>({ type: "job_recorded", jobId: id, worker: me.publicKey });
    const setup = {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    };
    const first = new ActorSystem({ name: "cancel-guard-first" });
    try {
      const validator = await spawnValidator(first, setup);
      for (const key of [me.publicKey, finisher.publicKey]) {
        await validator.ask({ type: "deposit", key, amount: STAKE });
      }
      // Its prover hands its cancelled receipt to its own validator, unassigned.
      const own = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: cancelled,
        job,
        origin: "local",
        announce: true,
      });
      assert(own.recorded, `own cancelled receipt: ${own.refusal}`);
      assertEquals(await guard(validator), true);
      // The router's announcement of the finisher's assigned receipt takes the job.
      const theirs = await announceAssigned(validator, whole, job, router);
      assert(theirs.recorded, `finisher's receipt: ${theirs.refusal}`);
      assertEquals(await guard(validator), true, "the guard forgot the receipt this node signed");
    } finally {
      await first.shutdown();
    }
    // Restarted: the node's list of jobs it signed is gone; the guard is all it has.
    const second = new ActorSystem({ name: "cancel-guard-second" });
    try {
      const validator = await spawnValidator(second, setup);
      assertEquals(await guard(validator), true, "the guard forgot it across a restart");
      const inference = await second.spawn<InferenceMessage>({
        name: "inference",
        factory: () =>
          new InferenceActor({
            models: new StaticModels([f.honest]),
            prover: async (j, _id, chunks) => (await proveJob(j, chunks, me)).receipt,
            receiptSigned: () => guard(validator),
          }),
      });
      // The client's retry (same nonce: the same job) reaches this node again.
      const refused = await assertRejects(() => submitJob(inference, job), VeriflowError);
      assertEquals(refused.code, "duplicate_job");
      const reads = ledgerReads(() => validator, clock);
      await reads.closeWindow();
      const mine = await reads.account(me.publicKey);
      const theirs = await reads.account(finisher.publicKey);
      assertEquals(mine.stake, STAKE, "the node was slashed");
      assertEquals(theirs.balance, whole.tokenCount, "the finisher lost its pay");
      assertEquals(theirs.stake, STAKE);
    } finally {
      await second.shutdown();
    }
  });
});
