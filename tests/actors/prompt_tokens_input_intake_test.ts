/**
 * A ValidatorActor that holds a job's stored input in its own store counts the receipt's prompt
 * tokens exactly at intake, input text included (review s78 vprompt F1, what stop 78 left open): a
 * worker that signs more prompt tokens than the input and prompt have, yet fewer than the model's
 * window, was held to the window alone and paid for them when the coin did not draw. Who pays: the
 * cheat, from the stake its inflated receipt locked; the honest worker is paid prompt included. The
 * input is read from the node's own store only (`local`): a read that would ask storage peers is
 * not made inside the validator's mailbox.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobPromptText } from "../../protocols/job_input.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 1_000_000;
/** Prompt tokens a cheat adds to the true count: well inside the model's window, so only an exact count sees them. */
const OVERCLAIM = 40;
/** How long a challenge may take to settle: a teacher-forced pass on a shared CPU, with room. */
const SETTLE_TIMEOUT_MS = 20_000;
const INPUT = new TextEncoder().encode("Notes: the river rose two metres overnight.\n");

/**
 * A validator whose coin never draws (p = 0), holding the honest model and, in its own store, the
 * job's input, records a receipt of a job reading that input that signs `count(truth)` prompt
 * tokens; its ledger once the window has closed.
 */
async function recordWithInput(nonce: string, count: (truth: number) => number) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "prompt-tokens-input-intake" });
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, nonce, { prompt: "Summary:", input: cidOf(INPUT) });
  const ids = f.honest.tokenizer.encode(jobPromptText(job, INPUT));
  const proved = await proveJob(job, f.honest.generate(ids, job.params), worker, {
    promptTokens: count(ids.length),
    input: INPUT,
  });
  const id = receiptId(proved.receipt);
  const reads: { cid: string; local?: boolean }[] = [];
  try {
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
      // This node's store holds the input; a read that would ask its storage peers finds nothing.
      readInput: (cid, _signal, options) => {
        reads.push({ cid, local: options?.local });
        return options?.local === true && cid === job.input
          ? Promise.resolve(INPUT)
          : Promise.reject(new Error("not read from this node's store"));
      },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    await handled.result?.catch(() => {});
    const ledger = ledgerReads(() => validator, clock);
    await eventually(
      async () => (await ledger.record(id))?.status !== "challenged" || undefined,
      "the receipt recorded and any challenge settled",
      { timeoutMs: SETTLE_TIMEOUT_MS },
    );
    await ledger.closeWindow();
    return {
      truth: ids.length,
      receipt: proved.receipt,
      challenged: handled.challenged,
      reads,
      record: await ledger.record(id),
      account: await ledger.account(worker.publicKey),
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a validator holding a job's input counts its prompt exactly at intake: a count inflated inside the model's window is challenged whatever the coin, convicted, and the cheat's stake pays the lock of what it claimed", async () => {
  const cheat = await recordWithInput("input-inflated", (truth) => truth + OVERCLAIM);
  const window = f.honest.info.contextLength;
  assert.ok(window !== undefined && cheat.receipt.promptTokens! < window - 1);
  assert.equal(cheat.challenged, true, "an inflated count with the input held was not challenged");
  assert.equal(cheat.record?.status, "fraud");
  const lock = paidFor(cheat.receipt) * DEFAULT_ECONOMICS.slashMultiplier;
  assert.deepEqual(cheat.account, { balance: 0, stake: WORKER_STAKE - lock, locked: 0 });
  assert.ok(cheat.reads.every((r) => r.local === true), "the intake asked beyond its own store");
});

Deno.test("a validator holding a job's input does not challenge the honest count of input and prompt: it is paid, input and prompt tokens included, once the window closes", async () => {
  const honest = await recordWithInput("input-honest", (truth) => truth);
  assert.equal(honest.challenged, false);
  assert.equal(honest.record?.status, "final");
  assert.ok(honest.truth > INPUT.length / 2, "the input's text was not counted");
  assert.deepEqual(honest.account, {
    balance: paidFor(honest.receipt),
    stake: WORKER_STAKE,
    locked: 0,
  });
});
