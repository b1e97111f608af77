/**
 * Prompt tokens earn (batching review F2 of stop 77): on the node's path (`InferenceActor` →
 * `ProverActor`) the worker's receipt signs the prompt tokens its model prefilled, and a ledger
 * pays them at the model's prompt price beside the output tokens. Before, a long prompt and a
 * short one at `maxTokens: 1` both earned one token's credit, whatever the prefill cost.
 *
 * The tiny model's context holds 256 tokens, so the long prompt here is 200 tokens, not 500.
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { submitJob } from "../../actors/inference_actor.ts";
import { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { loadTinyModel, params } from "../server/_fixtures.ts";
import { spawnProvingInference } from "./_proving_inference.ts";

/** Credits per output token in the test ledger: a round number the prompt share divides. */
const PRICE = 2;
/** A long prompt's tokens: as many as the tiny model's 256-token context holds with room. */
const LONG = 200;
/** A short prompt's tokens. */
const SHORT = 5;

/** Run `prompt` with `maxTokens: 1` on the node's path; the worker's receipt. */
async function runOnNode(prompt: string, nonce: string) {
  const model = await loadTinyModel();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const system = new ActorSystem({ name: "prompt-tokens" });
  try {
    const { inference } = await spawnProvingInference(system, model, worker);
    const job: TextJob = {
      kind: "text",
      model: model.info.cid,
      prompt,
      params: params({ maxTokens: 1, temperature: 0 }),
      nonce,
      requester: toHex(requester.publicKey),
    };
    const handle = await submitJob(inference, job);
    for await (const _ of handle.tokens) { /* read to the end */ }
    const summary = await handle.done;
    const receipt = summary.receipt as Receipt | undefined;
    assert(receipt !== undefined, "the job has no receipt");
    return { model, worker, requester, job, receipt };
  } finally {
    await system.shutdown();
  }
}

/** What a ledger pays the worker for `run`'s receipt once its window closed. */
async function paid(run: Awaited<ReturnType<typeof runOnNode>>): Promise<number> {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const ledger = await Ledger.open(dir, Identity.generate(), {
    now: () => clock.t,
    tokenPrice: () => PRICE,
  });
  try {
    // Enough to back the lock (slashMultiplier × the reward) of the long prompt's receipt.
    await ledger.deposit(run.worker.publicKey, 10_000);
    const assignment = signAssignment(
      { job: run.job, worker: run.worker.publicKey, issuedAt: 0 },
      run.requester,
    );
    await ledger.recordReceipt(run.receipt, { assignment });
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    const account = ledger.account(run.worker.publicKey);
    assertEquals(account.locked, 0, "the receipt was not final");
    return account.balance;
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("F2: the node's receipt signs the prompt tokens its model prefilled, and a 200-token prompt at maxTokens 1 earns more than a 5-token one by exactly the 195 tokens × the prompt price", async () => {
  const long = await runOnNode("a".repeat(LONG), "long-prompt");
  const short = await runOnNode("hello", "short-prompt");
  assertEquals(long.model.tokenizer.encode(long.job.prompt).length, LONG);
  assertEquals(short.model.tokenizer.encode(short.job.prompt).length, SHORT);
  assertEquals(long.receipt.promptTokens, LONG);
  assertEquals(short.receipt.promptTokens, SHORT);
  assertEquals(long.receipt.tokenCount, 1);
  assertEquals(short.receipt.tokenCount, 1);

  // The model's prompt price: the default share (a sixteenth, review s78 vprompt F3) of its
  // output price.
  const inputPrice = PRICE * DEFAULT_ECONOMICS.promptTokenShare;
  assertEquals(inputPrice, PRICE / 16);
  const [longPaid, shortPaid] = [await paid(long), await paid(short)];
  assertEquals(longPaid, 1 * PRICE + LONG * inputPrice);
  assertEquals(shortPaid, 1 * PRICE + SHORT * inputPrice);
  assertEquals(longPaid - shortPaid, (LONG - SHORT) * inputPrice);
});
