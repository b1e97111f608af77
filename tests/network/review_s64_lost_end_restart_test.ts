/**
 * Review s64: the lost-end store of a forwarding node (`network/_lost_ends.ts`: the jobs whose
 * every token the client got and whose worker's `end` event, its receipt, was lost with the
 * connection, asked for later) was kept in memory only. A router that restarted before the
 * worker came back forgot every receipt it still had to ask for, and those honest workers were
 * paid in no ledger. Now, given a folder (`lostEndsDir`, `<dataDir>/lost-ends` on a node), the
 * port keeps each lost end there too (`network/_lost_end_files.ts`) and asks for those it finds
 * when it starts, for what is left of their challenge window.
 *
 * The set-up is stop 59's (`review_s59_late_receipt_end_test.ts`): a router whose validator keeps
 * a real ledger on the test's clock and a worker node that proves its jobs, over in-memory
 * connections the test closes after the last token and before the end. The router's restart is
 * a second `NetworkInferencePort` on the same folder, whose first never asks (its timers never
 * fire: the process it stands for is gone).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { LOST_ENDS_DIR, NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { connectWorker, OneWorker, ProvingWorkerPort, spawnRouter } from "./_proving_worker.ts";

const WORKER_STAKE = 1_000_000;

const JOB: TextJob = {
  kind: "text",
  model: f.honest.info.cid,
  prompt: "Settle this",
  params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
  nonce: "s64-lost-end-restart",
};

/** A router keeping its lost ends in `<dir>/lost-ends` (or in memory only), and a worker. */
async function setUp(label: string, kept: boolean) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `s64-lost-end-router-${label}` });
  const workerSystem = new ActorSystem({ name: `s64-lost-end-worker-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const lostEndsDir = kept ? join(dir, LOST_ENDS_DIR) : undefined;
  /** The router's forwarding port, as a node (re)starting builds it. */
  const start = () => {
    const timers = new FakeTimers();
    const port = new NetworkInferencePort(networkRef, validator, router, {
      tokensPerEvent: 1,
      timers,
      lostEndsDir,
    });
    return { port, timers };
  };
  const workerPort = new ProvingWorkerPort(worker, { held: true });
  const connect = async () => {
    const ends = await connectWorker(router, worker, workerPort, workerSystem);
    network.connection = ends.toWorker;
    return ends;
  };
  return {
    dir,
    worker,
    workerPort,
    start,
    connect,
    reads: ledgerReads(() => validator, clock),
    async close() {
      await network.connection?.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Run `JOB` through `port`; lose the connection after the client's last token and before the
 * worker's end event. Returns the worker's receipt (signed, never sent).
 */
async function loseEnd(
  t: Awaited<ReturnType<typeof setUp>>,
  port: NetworkInferencePort,
): Promise<Receipt> {
  const first = await t.connect();
  const handle = await port.submit({ ...JOB, nonce: `${JOB.nonce}-${crypto.randomUUID()}` });
  const got: StreamedToken[] = [];
  for await (const token of handle.tokens) got.push(token);
  assert.ok(got.at(-1)?.finishReason !== undefined, "every token came");
  await first.toWorker.close();
  await first.atWorker.close();
  t.workerPort.release.resolve(); // the worker's receipt is signed now, its end unsent
  const summary = await handle.done;
  assert.equal(summary.error?.code, "connection_closed");
  assert.equal(summary.receipt, undefined, "the end event (receipt) was lost");
  return t.workerPort.receipt!;
}

/**
 * The records in the lost-end folder of the router whose data is in `dir` (listed, not read
 * with `LostEndFiles.all`, which clears a write's temporary file: the router's own, in flight).
 */
async function keptOnDisk(dir: string): Promise<string[]> {
  try {
    const entries = await Array.fromAsync(Deno.readDir(join(dir, LOST_ENDS_DIR)));
    return entries.map((e) => e.name).filter((name) => name.endsWith(".cbor"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

for (const kept of [true, false]) {
  Deno.test(`review s64: a router that restarts after a worker's end event was lost ${kept ? "asks for the receipt it kept on disk when the worker is back: the honest worker is paid tokens × price" : "with its lost ends in memory only forgets the receipt: the honest worker is paid nothing"}`, async () => {
    const t = await setUp(kept ? "kept" : "memory", kept);
    try {
      const before = t.start();
      const receipt = await loseEnd(t, before.port);
      assert.equal(await t.reads.record(receiptId(receipt)), undefined);
      if (kept) {
        await eventually(
          async () => (await keptOnDisk(t.dir)).length === 1,
          "the lost end to be kept on disk",
        );
      }
      // The router restarts (its first port's asks never come), and the worker is back.
      const after = t.start();
      await t.connect();
      if (kept) {
        await eventually(() => after.timers.armed.size > 0, "the kept lost end's ask to be armed");
      } else await after.timers.armed.size; // nothing to read back
      after.timers.fireAll();
      await eventually(
        async () => (await t.reads.record(receiptId(receipt))) !== undefined,
        "the receipt to reach the router's ledger",
        { timeoutMs: 3_000 },
      ).catch(() => {}); // never asked for: the ledger outcome below says so
      await t.reads.closeWindow();
      const balance = (await t.reads.account(t.worker.publicKey)).balance;
      if (kept) {
        assert.equal((await t.reads.record(receiptId(receipt)))?.status, "final");
        assert.equal(
          balance,
          receipt.tokenCount * 1, // DEFAULT_ECONOMICS.defaultTokenPrice
          "the honest worker whose end a restarted router had to ask for was paid nothing",
        );
        // Its receipt came: the lost end is forgotten on disk too.
        await eventually(
          async () => (await keptOnDisk(t.dir)).length === 0,
          "the answered lost end to be removed from the folder",
        );
      } else assert.equal(balance, 0);
    } finally {
      await t.close();
    }
  });
}
