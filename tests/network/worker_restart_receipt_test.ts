/**
 * A worker killed while a forwarded job's `end` event (its receipt) was still unsent, and started
 * again on the same data (review s79 crash, F2 and F4):
 *
 * - F2: killed after signing. Before, the restarted worker answered the router's
 *   `inference.get_receipt` from memory only (`UnsentReceipts`), which the kill emptied, though
 *   its proof record was on disk: the honest worker that delivered every token was paid nowhere.
 *   Now the record keeps the signed receipt (`proof/proof_store.ts`) and the worker answers from
 *   it (`job_trace`, `actors/prover_actor.ts`; `inference/serve_inference.ts`).
 * - F4: killed before its receipt reached the disk. Before, the restarted worker answered "none"
 *   like a worker still signing, and the router kept the lost end and refused its client's retry
 *   as "its worker's receipt is still owed" for the whole window. Now it answers `unknown_job`
 *   and the router forgets the lost end (`network/_lost_ends.ts`): the retry runs.
 *
 * The set-up: a router (a `NetworkInferencePort` over a real ledger on the test's clock, its asks
 * on fake timers, its lost ends kept in a folder) and a real worker node (an `InferenceActor` on
 * the honest tiny model with a `ProverActor`, served as a node serves its peers, `servePeer`).
 * The kill: the worker's job is held after its receipt is signed and stored, so its `end` never
 * goes out; the connection is lost, and the worker's actor system is shut down, its memory gone.
 * The restart: a new actor system of the same key on the same proof folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import type { JobTrace } from "../../inference/serve_inference.ts";
import { toHex } from "../../protocols/hash.ts";
import type {
  InferenceHandle,
  InferencePort,
  JobSummary,
  StreamedToken,
} from "../../inference/inference_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { LOST_ENDS_DIR, NetworkInferencePort } from "../../network/network_inference_port.ts";
import { servePeer } from "../../network/peer_services.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  ReceiptRequestMessage,
  UNKNOWN_JOB,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { clientJob, OneWorker, spawnRouter } from "./_proving_worker.ts";

const WORKER_STAKE = 1_000_000;
/** Tokens of each job: enough for a receipt over several positions. */
const JOB_TOKENS = 6;

/**
 * A worker's port whose jobs' `done` is held once the local one resolved (the receipt signed and
 * its proof record written), until {@link release}: the `end` event waits on it, so a job held
 * at its kill never sends its end.
 */
class HeldEndPort implements InferencePort {
  readonly #inner: InferencePort;
  readonly #release = Promise.withResolvers<void>();
  /** The summaries the local port gave (receipt included), by job id. */
  readonly signed = new Map<string, PromiseWithResolvers<JobSummary>>();

  constructor(inner: InferencePort, held: boolean) {
    this.#inner = inner;
    if (!held) this.#release.resolve();
  }

  /** The signed summary of job `id`, once the local port gave it. */
  summaryOf(id: string): Promise<JobSummary> {
    return this.#signed(id).promise;
  }

  #signed(id: string): PromiseWithResolvers<JobSummary> {
    let signed = this.signed.get(id);
    if (signed === undefined) this.signed.set(id, signed = Promise.withResolvers());
    return signed;
  }

  models() {
    return this.#inner.models();
  }

  stats() {
    return this.#inner.stats();
  }

  async submit(...args: Parameters<InferencePort["submit"]>): Promise<InferenceHandle> {
    const handle = await this.#inner.submit(...args);
    const signed = this.#signed(handle.jobId);
    const done = handle.done.then(async (summary) => {
      signed.resolve(summary);
      await this.#release.promise;
      return summary;
    });
    return { ...handle, done };
  }
}

/** One incarnation of the worker node: its key, its proof folder (none: memory only). */
async function startWorker(
  label: string,
  identity: Identity,
  proofDir: string | undefined,
  held: boolean,
) {
  const system = new ActorSystem({ name: `s79-crash-worker-${label}` });
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity, dir: proofDir, sweepEveryMs: 0 }),
  });
  const models = new StaticModels([f.honest]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
  });
  const port = new HeldEndPort(new LocalInferencePort({ inference, models }), held);
  return { system, prover, port };
}

/** Router and a worker key, the worker not started yet. */
async function setUp(label: string) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `s79-crash-router-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const timers = new FakeTimers();
  const port = new NetworkInferencePort(networkRef, validator, router, {
    tokensPerEvent: 1,
    timers,
    lostEndsDir: join(dir, LOST_ENDS_DIR),
  });
  const connections: Connection[] = [];
  /** Connect the router to `node`, served as a node serves its peers. */
  const connect = async (node: Awaited<ReturnType<typeof startWorker>>) => {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: router, protocols }),
      Connection.open(b, { identity: worker, protocols }),
    ]);
    servePeer(atWorker, router.publicKey, {
      system: node.system,
      inference: node.port,
      prover: "prover",
    });
    connections.push(toWorker, atWorker);
    network.connection = toWorker;
    return { toWorker, atWorker };
  };
  return {
    dir,
    router,
    worker,
    port,
    timers,
    connect,
    reads: ledgerReads(() => validator, clock),
    async close() {
      for (const connection of connections) await connection.close().catch(() => {});
      await routerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The lost ends the router keeps in its folder. */
async function lostEndsOnDisk(dir: string): Promise<string[]> {
  try {
    const entries = await Array.fromAsync(Deno.readDir(join(dir, LOST_ENDS_DIR)));
    return entries.map((e) => e.name).filter((name) => name.endsWith(".cbor"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/**
 * Run `job` through the router on `node` (held at its end); once the worker signed it, lose the
 * connection, so the router keeps a lost end, and kill the worker (its system shut down).
 * Returns the receipt the killed worker signed.
 */
async function runThenKill(
  t: Awaited<ReturnType<typeof setUp>>,
  node: Awaited<ReturnType<typeof startWorker>>,
  job: TextJob,
): Promise<Receipt> {
  const link = await t.connect(node);
  const handle = await t.port.submit(job);
  const got: StreamedToken[] = [];
  for await (const token of handle.tokens) got.push(token);
  assert.equal(got.length, JOB_TOKENS, "every token came");
  const signed = await node.port.summaryOf(jobId({ ...job, requester: toHex(t.router.publicKey) }));
  assert.ok(signed.receipt !== undefined, "the worker signed a receipt");
  await link.toWorker.close();
  await link.atWorker.close();
  const summary = await handle.done;
  assert.equal(summary.receipt, undefined, "the end event (receipt) was lost");
  await eventually(async () => (await lostEndsOnDisk(t.dir)).length === 1, "the lost end kept");
  await node.system.shutdown(); // kill: what it kept in memory is gone
  return signed.receipt as Receipt;
}

Deno.test("a worker killed after signing, before its end event went out, hands its receipt over after a restart on the same data: the router assigns it and the honest worker is paid its credit", async () => {
  const t = await setUp("signed");
  const proofDir = join(t.dir, "worker-proofs");
  let after: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    const before = await startWorker("signed-1", t.worker, proofDir, true);
    const receipt = await runThenKill(
      t,
      before,
      clientJob(`s79-f2-${crypto.randomUUID()}`, JOB_TOKENS),
    );
    assert.equal(await t.reads.record(receiptId(receipt)), undefined, "not assigned yet");
    // Restarted on the same proof folder; the router's next ask comes.
    after = await startWorker("signed-2", t.worker, proofDir, false);
    await t.connect(after);
    await eventually(() => t.timers.armed.size > 0, "the lost end's ask to be armed");
    t.timers.fireAll();
    await eventually(
      async () => (await lostEndsOnDisk(t.dir)).length === 0,
      "the router to get the receipt and forget the lost end",
      { timeoutMs: 5_000 },
    ).catch(() => {}); // the ledger outcome below says what happened
    const record = await t.reads.record(receiptId(receipt));
    assert.ok(
      record !== undefined,
      "the restarted worker's receipt never reached the router's ledger",
    );
    assert.ok(record.credit > 0, "the receipt is in the router's ledger, but unassigned");
    await t.reads.closeWindow();
    assert.equal((await t.reads.record(receiptId(receipt)))?.status, "final");
    assert.equal(
      (await t.reads.account(t.worker.publicKey)).balance,
      record.credit, // its tokens and prompt tokens at the price: paid once the window closed
      "the honest worker that delivered every token was not paid its receipt's credit",
    );
  } finally {
    await after?.system.shutdown();
    await t.close();
  }
});

Deno.test("a worker killed before its receipt reached its disk answers unknown_job after a restart: the router forgets the lost end and the client's retry runs on the worker, its receipt assigned", async () => {
  const t = await setUp("unsigned");
  let after: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    // Its first incarnation keeps proofs in memory only: at the kill nothing of the job is on disk,
    // the state of a worker killed before its proof record was written.
    const before = await startWorker("unsigned-1", t.worker, undefined, true);
    const job = clientJob(`s79-f4-${crypto.randomUUID()}`, JOB_TOKENS);
    await runThenKill(t, before, job);
    after = await startWorker("unsigned-2", t.worker, join(t.dir, "worker-proofs"), false);
    await t.connect(after);
    await eventually(() => t.timers.armed.size > 0, "the lost end's ask to be armed");
    t.timers.fireAll();
    await eventually(
      async () => (await lostEndsOnDisk(t.dir)).length === 0,
      "the router to forget the lost end its restarted worker has no trace of",
      { timeoutMs: 5_000 },
    ).catch(() => {}); // the retry below says what happened
    // The client's retry, the same job: it runs (before, `duplicate_job`: "still owed").
    const retry = await t.port.submit(job);
    const got: StreamedToken[] = [];
    for await (const token of retry.tokens) got.push(token);
    const summary = await retry.done;
    assert.equal(got.length, JOB_TOKENS);
    assert.ok(summary.receipt !== undefined, "the retry ended without a receipt");
    const id = receiptId(summary.receipt as Receipt);
    await eventually(
      async () => ((await t.reads.record(id))?.credit ?? 0) > 0,
      "the retry's receipt to be assigned in the router's ledger",
    );
  } finally {
    await after?.system.shutdown();
    await t.close();
  }
});

Deno.test("a restarted worker answers get_receipt from its proof record only to the job's requester; unknown_job only for a job it has no trace of", async () => {
  const proofDir = await Deno.makeTempDir();
  const [worker, requester, other] = [
    Identity.generate(),
    Identity.generate(),
    Identity.generate(),
  ];
  const nodes: Awaited<ReturnType<typeof startWorker>>[] = [];
  const links: Connection[] = [];
  /** A connection from `asker` to `node`. */
  const connect = async (node: Awaited<ReturnType<typeof startWorker>>, asker: Identity) => {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [to, at] = await Promise.all([
      Connection.open(a, { identity: asker, protocols }),
      Connection.open(b, { identity: worker, protocols }),
    ]);
    servePeer(at, asker.publicKey, { system: node.system, inference: node.port, prover: "prover" });
    links.push(to, at);
    return to;
  };
  try {
    const first = await startWorker("direct-1", worker, proofDir, false);
    nodes.push(first);
    const job = {
      ...clientJob(`s79-direct-${crypto.randomUUID()}`, JOB_TOKENS),
      requester: toHex(requester.publicKey),
    };
    const handle = await first.port.submit(job);
    for await (const _ of handle.tokens) { /* read every token */ }
    const signed = (await handle.done).receipt as Receipt;
    assert.ok(signed !== undefined);
    await first.system.shutdown();
    const second = await startWorker("direct-2", worker, proofDir, false);
    nodes.push(second);
    const toRequester = await connect(second, requester);
    const kept = await toRequester.request(ReceiptRequestMessage, { jobId: jobId(job) });
    assert.equal(
      kept.receipt && receiptId(kept.receipt),
      receiptId(signed),
      "its receipt, after the restart",
    );
    // Another key gets no receipt, and is not told the job is unknown: it is known here.
    const toOther = await connect(second, other);
    const refused = await toOther.request(ReceiptRequestMessage, { jobId: jobId(job) });
    assert.deepEqual(refused, { receipt: null });
    const never = await toRequester.request(ReceiptRequestMessage, { jobId: "ab".repeat(32) });
    assert.deepEqual(never, { receipt: null, reason: UNKNOWN_JOB });
    // The prover's own answer: signed, with the job's requester.
    const trace = await second.prover.ask<JobTrace>({ type: "job_trace", jobId: jobId(job) });
    assert.equal(trace.kind, "signed");
  } finally {
    for (const link of links) await link.close().catch(() => {});
    for (const node of nodes) await node.system.shutdown().catch(() => {});
    await Deno.remove(proofDir, { recursive: true });
  }
});
