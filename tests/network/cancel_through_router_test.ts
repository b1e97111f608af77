/**
 * A client's cancel through a forwarding node (review s77 F1, the part 45044d0 left unbuilt): the
 * router's cancel tells the worker how many tokens its client got (`held` in the connection's
 * `cancel`, `protocols/held_cancel.ts`), the worker signs its cancelled receipt over exactly
 * those (not over the tokens it sent, some still in the credit window), and the router asks for
 * it (`inference.get_receipt`), hands it to its client and to its validator with its assignment:
 * the requester is charged, and the worker paid, for the k tokens. A worker from before the count
 * signs over its own count: its receipt is not the client's, is dropped, and the worker is not
 * blamed.
 *
 * Two nodes in memory: a worker (InferenceActor, ProverActor, the honest model, served as a node
 * serves its peers) and a router (a `NetworkInferencePort` whose validator keeps a real ledger).
 *
 * @module
 */
import assert from "node:assert/strict";
import { paidFor } from "../proof/_receipt_pay.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { InferenceHandle, InferencePort } from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { ReceiptRequestMessage } from "../../protocols/inference_messages.ts";
import { HeldCancelError } from "../../protocols/held_cancel.ts";
import { StreamCancelledError } from "../../protocols/protocol_errors.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { clientJob, connectWorker, OneWorker, spawnRouter } from "./_proving_worker.ts";

/** Tokens the client reads before it cancels. */
const READ = 3;
/**
 * The job's limit: far past {@link READ}, so the worker has sent tokens into the credit window
 * (one token per event) that the client never read when the cancel comes.
 */
const MAX_TOKENS = 24;
/** Token events waiting unread at the router when the client cancels (within the credit window). */
const AHEAD = 2;
const WORKER_STAKE = 1_000_000;

const JOB: TextJob = clientJob("cancel-through-router", MAX_TOKENS);

/**
 * A worker from before the count: the peer's cancel reaches its job as a plain stream cancel,
 * without `held` (its schema strips the field), so it signs over the tokens it handed on, as
 * 45044d0's workers do.
 */
class CountlessPort implements InferencePort {
  constructor(readonly inner: InferencePort) {}
  models(): ReturnType<InferencePort["models"]> {
    return this.inner.models();
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return this.inner.stats();
  }
  async submit(...args: Parameters<InferencePort["submit"]>): Promise<InferenceHandle> {
    const handle = await this.inner.submit(...args);
    const reader = handle.tokens.getReader();
    const tokens = new ReadableStream({
      pull: async (controller) => {
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      // The count dropped, the cancel otherwise as it came.
      cancel: (reason) =>
        reader.cancel(
          reason instanceof HeldCancelError ? new StreamCancelledError(reason.message) : reason,
        ),
    }, { highWaterMark: 0 });
    return { ...handle, tokens };
  }
}

/** Router and worker nodes, connected. */
async function setUp(label: string, countless = false) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `cancel-router-${label}` });
  const workerSystem = new ActorSystem({ name: `cancel-worker-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const port = new NetworkInferencePort(networkRef, validator, router, { tokensPerEvent: 1 });
  const { prover, local } = await spawnHonestInference(workerSystem, worker);
  const served = countless ? new CountlessPort(local) : local;
  const ends = await connectWorker(router, worker, served, workerSystem);
  network.connection = ends.toWorker;
  return {
    router,
    worker,
    network,
    port,
    prover,
    reads: ledgerReads(() => validator, clock),
    async close() {
      await ends.toWorker.close();
      await ends.atWorker.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Submit {@link JOB} through the router, read {@link READ} tokens, cancel. */
async function cancelAtK(t: Awaited<ReturnType<typeof setUp>>) {
  const handle = await t.port.submit(JOB);
  const reader = handle.tokens.getReader();
  let text = "";
  for (let i = 0; i < READ; i++) {
    const next = await reader.read();
    assert.ok(!next.done, "the job ended before the client cancelled");
    assert.equal(next.value.finishReason, undefined, "the model ended the job before the cancel");
    text += next.value.text;
  }
  // The worker has sent on into the credit window: tokens the client never reads.
  await eventually(
    () => t.network.connection!.stats().bufferedChunks >= AHEAD,
    "the worker to send tokens past the client's reads",
    { timeoutMs: 5_000 },
  );
  await reader.cancel();
  const summary = await handle.done;
  // The job as the worker ran it: the router names itself its requester.
  const routed: TextJob = { ...JOB, requester: toHex(t.router.publicKey) };
  return { summary, text, routed };
}

Deno.test("F1: a client's cancel at k through a router ends in the worker's receipt over exactly k, handed to the client, valid re-run alone; the requester is charged k and the worker paid k in the router's ledger", async () => {
  const t = await setUp("paid");
  try {
    const { summary, text, routed } = await cancelAtK(t);
    assert.equal(summary.finishReason, "cancelled");
    const receipt = summary.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the client got no receipt for the k tokens it was sent");
    assert.equal(receipt.end, "cancelled");
    assert.equal(receipt.tokenCount, READ, "the receipt is not over the tokens the client got");
    const check = verifyReceipt(receipt, { job: routed, worker: t.worker.publicKey, output: text });
    assert.ok(check.ok, check.ok ? "" : check.message);

    // Valid when a validator re-runs it alone, positions 0 … k−1.
    const served = await t.prover.ask<ServedProof | undefined>({
      type: "get_proof",
      receiptId: receiptId(receipt),
    });
    assert.ok(served !== undefined, "the worker keeps no proof data for its cancelled receipt");
    const { verdict } = await validateReceipt(
      { job: routed, receipt, proof: served.proof },
      f.honest,
      Identity.generate(),
    );
    assert.equal(verdict.outcome, "valid", verdict.reason);
    assert.equal(verdict.details?.positions, READ);

    // In the router's ledger with its assignment: charged to it as requester, paid to the worker.
    await eventually(
      async () => (await t.reads.record(receiptId(receipt))) !== undefined,
      "the receipt to reach the router's ledger",
      { timeoutMs: 3_000 },
    );
    await t.reads.closeWindow();
    const record = await t.reads.record(receiptId(receipt));
    assert.equal(record?.status, "final");
    assert.equal(record?.requester, toHex(t.router.publicKey));
    // READ output tokens (the receipt signs READ) and the prompt it signs (`_receipt_pay.ts`).
    assert.equal(record?.credit, paidFor(receipt));
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, paidFor(receipt));
    assert.deepEqual(t.network.avoided, []);
  } finally {
    await t.close();
  }
});

Deno.test("F1: a worker from before the cancel's count signs over the tokens it sent (more than the client read): the router drops that receipt, the client gets none, nobody is charged or paid, and the worker is not kept off the model", async () => {
  const t = await setUp("countless", true);
  try {
    const { summary } = await cancelAtK(t);
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.receipt, undefined, "a receipt over more than the client got reached it");
    assert.equal(summary.error, undefined);
    assert.deepEqual(t.network.avoided, [], "an honest older worker was kept off the model");
    // It did sign, over what it sent: tokens the client never read.
    const kept = await t.network.connection!.request(ReceiptRequestMessage, {
      jobId: summary.jobId,
    });
    assert.ok(kept.receipt !== null, "the older worker signed nothing");
    assert.ok(kept.receipt.tokenCount > READ, `it signed ${kept.receipt.tokenCount} tokens`);
    assert.equal(await t.reads.record(receiptId(kept.receipt)), undefined);
    await t.reads.closeWindow();
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});
