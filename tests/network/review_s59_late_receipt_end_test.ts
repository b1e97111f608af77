/**
 * Review s59: a forwarded job whose every token reached the client and whose worker's
 * connection was lost before the `end` event (its receipt).
 *
 * The forwarding node never got the receipt, so it signed no assignment, and no message asked
 * the worker for the receipt later: the honest worker, which did all the work and delivered
 * every token, was paid in no ledger (`docs/PROOF.md`, "Failover", documented as a design
 * limit). Now the worker keeps the receipt it could not send (`UnsentReceipts`,
 * `inference/serve_inference.ts`), and the forwarding node remembers the job and asks for it
 * (`inference.get_receipt`) once the worker is connected again; a receipt for exactly what the
 * client got goes to its validator with the assignment, one for anything else is refused.
 *
 * The set-up: a router (a `NetworkInferencePort` whose validator keeps a real ledger on the
 * test's clock, its asks on a fake timer) and a worker node serving a port that streams the
 * honest model's tokens and proves them (`servePeer`, as a node serves its peers), over an
 * in-memory connection the test closes after the last token and before the end.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { connectWorker, OneWorker, ProvingWorkerPort, spawnRouter } from "./_proving_worker.ts";

const WORKER_STAKE = 1_000_000;

/** Router and worker, each a node of its own, not yet connected. */
async function setUp(label: string, altered: boolean) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `s59-late-end-router-${label}` });
  const workerSystem = new ActorSystem({ name: `s59-late-end-worker-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const timers = new FakeTimers();
  const port = new NetworkInferencePort(networkRef, validator, router, {
    tokensPerEvent: 1,
    timers,
  });
  const workerPort = new ProvingWorkerPort(worker, { held: true, altered });
  /** A new connection router — worker, the worker serving it as a node serves its peers. */
  const connect = async () => {
    const ends = await connectWorker(router, worker, workerPort, workerSystem);
    network.connection = ends.toWorker;
    return ends;
  };
  return {
    clock,
    network,
    worker,
    port,
    workerPort,
    timers,
    connect,
    validator,
    reads: ledgerReads(() => validator, clock),
    async close() {
      await network.connection?.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const JOB: TextJob = {
  kind: "text",
  model: f.honest.info.cid,
  prompt: "Settle this",
  params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
  nonce: "s59-late-end",
};

/**
 * Run `JOB` through the router; lose the connection after the client's last token and before
 * the worker's end event; connect again and let the router ask. Returns the worker's receipt.
 */
async function lostEndThenBack(
  t: Awaited<ReturnType<typeof setUp>>,
  ownAnnouncement = false,
): Promise<Receipt> {
  const first = await t.connect();
  const handle = await t.port.submit({ ...JOB, nonce: `${JOB.nonce}-${crypto.randomUUID()}` });
  const got: StreamedToken[] = [];
  for await (const token of handle.tokens) got.push(token);
  assert.ok(got.length > 0 && got.at(-1)!.finishReason !== undefined, "every token came");
  // The connection is lost after the last token, before the worker's end event.
  await first.toWorker.close();
  await first.atWorker.close();
  t.workerPort.release.resolve(); // the worker's receipt is signed now, its end unsent
  const summary = await handle.done;
  assert.equal(summary.error?.code, "connection_closed");
  assert.equal(summary.receipt, undefined, "the end event (receipt) was lost");
  const receipt = t.workerPort.receipt!;
  assert.equal(receipt.tokenCount, got.length);
  // Nothing in the ledger yet: the router never got the receipt.
  assert.equal(await t.reads.record(receiptId(receipt)), undefined);
  assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0);
  if (ownAnnouncement) {
    // As in the network: the worker's own node announced its receipt, with no assignment
    // (it is not the requester): recorded, earning 0 unless an assignment comes.
    const job = t.workerPort.job!;
    const handled = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: toHex(t.worker.publicKey),
    });
    assert.equal(handled.recorded, true);
    assert.equal((await t.reads.record(receiptId(receipt)))?.credit, 0);
  }
  // The worker is connected again; the router's next ask comes (its fake timer fires).
  await t.connect();
  t.timers.fireAll();
  return receipt;
}

Deno.test("review s59: every token delivered and the worker's connection lost before its end event: the router asks the worker for its receipt on the next connection, and the honest worker is paid tokens × price in the router's ledger after the window", async () => {
  const t = await setUp("paid", false);
  try {
    const receipt = await lostEndThenBack(t);
    await eventually(
      async () => (await t.reads.record(receiptId(receipt))) !== undefined,
      "the receipt to reach the router's ledger",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // never asked for: the ledger outcome below says so
    await t.reads.closeWindow();
    const record = await t.reads.record(receiptId(receipt));
    assert.equal(record?.status, "final", "the worker's receipt was never recorded");
    assert.equal(
      (await t.reads.account(t.worker.publicKey)).balance,
      receipt.tokenCount * 1, // DEFAULT_ECONOMICS.defaultTokenPrice
      "the honest worker that delivered every token was paid nothing",
    );
  } finally {
    await t.close();
  }
});

Deno.test("review s59: the worker's own unassigned announcement recorded first (0 credit), the router's late assignment attaches to it: paid tokens × price after the window", async () => {
  const t = await setUp("attached", false);
  try {
    const receipt = await lostEndThenBack(t, true);
    await eventually(
      async () => (await t.reads.record(receiptId(receipt)))?.credit !== 0,
      "the assignment to attach",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // never asked for: the ledger outcome below says so
    await t.reads.closeWindow();
    assert.equal((await t.reads.record(receiptId(receipt)))?.status, "final");
    assert.equal(
      (await t.reads.account(t.worker.publicKey)).balance,
      receipt.tokenCount * 1,
      "the honest worker that delivered every token was paid nothing",
    );
  } finally {
    await t.close();
  }
});

Deno.test("review s59: a worker's late receipt for other output than the client got is refused: nothing recorded, nothing paid", async () => {
  const t = await setUp("refused", true);
  try {
    const receipt = await lostEndThenBack(t);
    // The router asked, checked it against what the client got, and refused it: the worker
    // is kept off the model as for any receipt that fails, and the job is not asked again.
    await eventually(
      () => t.network.avoided.includes(toHex(t.worker.publicKey)),
      "the router to refuse the receipt",
    );
    assert.equal(t.timers.armed.size, 0, "asked again after a refusal");
    await t.reads.closeWindow();
    assert.equal(await t.reads.record(receiptId(receipt)), undefined, "a mismatch was recorded");
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});
