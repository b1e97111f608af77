/**
 * A router's client that stops reading, with real actors end to end (stop 78): the router (a
 * `NetworkInferencePort` with a real ledger) forwards the client's job to worker A, an
 * `InferenceActor` with one seat, a small unread budget and its own prover; worker B, honest too,
 * is connected and free. The client reads two tokens and stops. A's own clients then want its
 * seat: the job runs on into A's memory to its end (its receipt signed) and its unread backlog is
 * evicted for another job (`slow_reader`, `actors/inference_job.ts` `evict`). Coverage had stopped
 * at the remote port's classification of the code (`slow_reader_relay_test.ts`).
 *
 * What the router does: it passes `slow_reader` to its client as the job's end, after the tokens
 * that were already on their way; it does not fail over to B (the client is the slow one) and does
 * not hang. Who pays: the client that read too slowly, by its router's assignment of A's receipt
 * over the whole job (`docs/PROTOCOL.md`, "Who pays, by how a job ends"); before, the receipt
 * never left A, and the honest worker was paid nothing for a job it ran to its end. A job that
 * failed over before its eviction (B lost under it, A resuming it) is paid to A, whose receipt
 * covers the whole job, and to nobody else.
 *
 * The router's clock and the worker's graces are fake: no real time is waited on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { UnreadTokenBudget } from "../../actors/_unread_token_budget.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import type { JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import { MIN_SLOW_READER_UNREAD_MS } from "../../inference/_remote_job.ts";
import {
  type ForwardingStats,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { ReceiptRequestMessage } from "../../protocols/inference_messages.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { f, type LedgerReads, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { StaticModels } from "../server/_fixtures.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { clientJob, connectWorker, HONEST_INFO, spawnRouter } from "./_proving_worker.ts";
import { Workers } from "./_router_doubles.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";

/** Tokens of the router's client's job: far more than the credit window the worker may send. */
const JOB_TOKENS = 96;
/** Tokens the client reads before it stops. */
const READ = 2;
/** Tokens of A's own client's job that needs the room (it pauses unread, as the slow one did). */
const OTHER_TOKENS = 60;
/**
 * A's unread budget: about 100 one-character tokens (`tokenBytes`: 128 bytes and two per
 * character). The slow job's backlog (its tokens past the credit window and those read, 80 at
 * most, 60 at least after a takeover) fits alone and holds more than half of it, so the other
 * job's spill finds it the largest holder and evicts it (`UnreadTokenBudget.reserve`).
 */
const BUDGET_BYTES = 130 * 100;
/** Each worker's stake: far more than one job locks. */
const WORKER_STAKE = 1_000_000;

/**
 * `model` without its batch seats, so the actor runs it with its `concurrency` (one seat): the
 * honest model seats 8, and a job of A's own client must wait for the slow job's seat.
 */
function oneSeat(model: TextModel): TextModel {
  return new Proxy(model, {
    has: (target, key) => key !== "batchCapacity" && Reflect.has(target, key),
    get(target, key) {
      if (key === "batchCapacity") return undefined;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A worker node with one seat, fake slow-reader graces and `budget`, proving as `identity`. */
async function spawnSlowSeatWorker(router: Identity, budget: UnreadTokenBudget) {
  const identity = Identity.generate();
  const system = new ActorSystem({ name: "slow-client-worker-a" });
  const graces = new FakeTimers();
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity }),
  });
  const models = new StaticModels([oneSeat(f.honest)]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({
        models,
        prover: proverHook(prover),
        concurrency: 1,
        unreadBudget: budget,
        slowReaderTimers: graces,
      }),
  });
  const local = new LocalInferencePort({ inference, models });
  const ends = await connectWorker(router, identity, local, system);
  return { identity, local, graces, ends, system };
}

/** An honest worker node (B) that would take the job over if the router failed over. */
async function spawnSpareWorker(router: Identity) {
  const identity = Identity.generate();
  const system = new ActorSystem({ name: "slow-client-worker-b" });
  const { local } = await spawnHonestInference(system, identity);
  const ends = await connectWorker(router, identity, local, system);
  return { identity, local, ends, system };
}

/**
 * The router's network stand-in over its workers, best first ({@link Workers}), that also finds a
 * worker's connection by key (`connection_to`), where the router asks a worker for a receipt.
 */
class WorkersByKey extends Workers {
  override receive(message: NetworkMessage): unknown {
    if (message.type !== "connection_to") return super.receive(message);
    return this.connections.find((c) => !c.isClosed && bytesEqual(c.peerKey!, message.key));
  }
}

/** Read until the stream ends or fails: the tokens, and the error it failed with. */
async function readRest(reader: ReadableStreamDefaultReader<StreamedToken>) {
  const tokens: StreamedToken[] = [];
  for (;;) {
    try {
      const { done, value } = await reader.read();
      if (done) return { tokens, error: undefined };
      tokens.push(value);
    } catch (error) {
      return { tokens, error };
    }
  }
}

/** Fire A's slow-reader graces once one is armed (the actor arms it as a job starts waiting). */
async function fireGraces(graces: FakeTimers, what: string): Promise<void> {
  await eventually(() => graces.armed.size > 0, what, { timeoutMs: 10_000 });
  graces.fireAll();
}

/** What the slow client's job came to, and the router and workers to judge it by. */
interface SlowClientRun {
  /** The tokens the client read after its pause, and the error its stream ended with. */
  rest: { tokens: StreamedToken[]; error: unknown };
  /** Tokens the client had read before it stopped. */
  read: number;
  summary: JobSummary;
  port: NetworkInferencePort;
  stats: ForwardingStats;
  network: WorkersByKey;
  reads: LedgerReads;
  router: Identity;
  a: Awaited<ReturnType<typeof spawnSlowSeatWorker>>;
  b: Awaited<ReturnType<typeof spawnSpareWorker>>;
}

/** The job of the router's client that read {@link READ} tokens and stopped. */
const SLOW_JOB = clientJob("slow-client-through-router", JOB_TOKENS);

/**
 * Run the scenario of the module doc up to the end of the slow client's job, then `body`; close
 * everything after. With `lostFirst`, B is asked first and its connection lost after the client
 * read {@link READ} tokens: the job fails over to A, which resumes it, and the client stops
 * reading once A's first token reached it.
 */
async function withSlowClient(
  body: (run: SlowClientRun) => Promise<void>,
  lostFirst = false,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: "slow-client-router" });
  const router = Identity.generate();
  const budget = new UnreadTokenBudget(BUDGET_BYTES);
  const a = await spawnSlowSeatWorker(router, budget);
  const b = await spawnSpareWorker(router);
  const order = lostFirst ? [b, a] : [a, b];
  const network = new WorkersByKey(order.map((w) => w.ends.toWorker), [HONEST_INFO]);
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  const timers = new ManualTimers();
  const port = new NetworkInferencePort(networkRef, validator, router, {
    tokensPerEvent: 1,
    timers,
  });
  const reads = ledgerReads(() => validator, clock);
  const own: { cancel(): void }[] = [];
  try {
    for (const w of [a, b]) {
      await validator.ask({ type: "deposit", key: w.identity.publicKey, amount: WORKER_STAKE });
    }
    const handle = await port.submit(SLOW_JOB);
    const reader = handle.tokens.getReader();
    let read = 0;
    for (; read < READ; read++) assert.equal((await reader.read()).value?.index, read);
    if (lostFirst) {
      await b.ends.atWorker.close();
      // The tokens B sent before, then A's first: the job resumed there.
      while ((await a.local.stats()).jobsStarted === 0 || read === READ) {
        assert.equal((await reader.read()).value?.index, read++);
      }
    }
    // The client stops reading; the router leaves the job's events unread past the least a worker
    // waits before it lets a job run on into memory.
    await timers.advance(MIN_SLOW_READER_UNREAD_MS);
    // A's own client wants the seat: the slow job runs on into memory, to its end.
    own.push(await a.local.submit(clientJob("worker-a-own-client", OTHER_TOKENS)));
    await fireGraces(a.graces, "the slow job's grace");
    await eventually(
      async () => (await a.local.stats()).jobsFinished === 1,
      "the slow job to run on into A's memory to its end",
      { timeoutMs: 10_000 },
    );
    // The other job pauses unread while a third waits: it spills, fills the budget, and evicts
    // the slow job's finished backlog (the largest holder).
    own.push(await a.local.submit(clientJob("worker-a-third", 1)));
    await fireGraces(a.graces, "the other job's grace");
    await eventually(() => budget.evictions === 1, "the slow job's backlog to be evicted", {
      timeoutMs: 10_000,
    });
    // The client reads again.
    const rest = await readRest(reader);
    const summary = await handle.done;
    const stats = await port.stats();
    await body({ rest, read, summary, port, stats, network, reads, router, a, b });
  } finally {
    for (const job of own) job.cancel();
    for (const w of [a, b]) {
      await w.ends.toWorker.close();
      await w.ends.atWorker.close();
      await w.system.shutdown();
    }
    await routerSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a router's client stops reading and its worker evicts the finished job's backlog: the client gets the tokens that were on their way, then slow_reader; no failover to the free worker, nobody blamed", async () => {
  await withSlowClient(async ({ rest, read, summary, stats, network, b }) => {
    assert.ok(rest.error instanceof VeriflowError, `no typed error: ${rest.error}`);
    assert.equal(rest.error.code, "slow_reader", rest.error.message);
    assert.deepEqual(
      rest.tokens.map((t) => t.index),
      [...Array(rest.tokens.length).keys()].map((i) => i + read),
      "a token twice or out of order",
    );
    assert.ok(read + rest.tokens.length < JOB_TOKENS, "every token reached the client");
    assert.equal(summary.finishReason, "error");
    assert.equal(summary.error?.code, "slow_reader");
    // No failover: B never ran the job, and the router counts one run, no failover, no hedge.
    assert.equal((await b.local.stats()).jobsStarted, 0, "the router failed over to B");
    assert.equal(stats.workerAttempts, 1);
    assert.equal(Object.values(stats.failovers).reduce((sum, n) => sum + n, 0), 0);
    assert.equal(Object.values(stats.hedges).reduce((sum, n) => sum + n, 0), 0);
    assert.equal(network.avoided.size, 0, "a worker was kept off the model for a slow client");
  });
});

Deno.test("who pays for a job whose router's client read too slowly: the worker that finished it is paid for every token by the router's assignment (before: its receipt never left it, paid nothing), once; the retry is refused duplicate_job and nobody runs it again", async () => {
  await withSlowClient(async ({ summary, port, reads, router, a, b }) => {
    // A kept its receipt over the whole job (its `end` never went out), for this router's key.
    const kept = await a.ends.toWorker.request(ReceiptRequestMessage, { jobId: summary.jobId });
    const receipt = kept.receipt ?? undefined;
    assert.ok(receipt !== undefined, "A kept no receipt for the router to ask for");
    assert.equal(receipt.tokenCount, JOB_TOKENS);
    assert.equal(receipt.end, undefined);
    const record = await eventually(
      () => reads.record(receiptId(receipt)),
      "A's receipt to be recorded in the router's ledger",
      { timeoutMs: 3_000 },
    );
    assert.equal(record.requester, toHex(router.publicKey), "recorded without the assignment");
    const price = DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.ok(record.credit >= JOB_TOKENS * price, `credit ${record.credit} for ${JOB_TOKENS}`);
    await reads.closeWindow();
    assert.equal(
      (await reads.account(a.identity.publicKey)).balance,
      record.credit,
      "the worker that finished the job was not paid for it",
    );
    assert.equal((await reads.account(b.identity.publicKey)).balance, 0);
    assert.equal((await reads.stats()).received, 1, "the job's receipt reached the ledger twice");
    // The client's retry of the same job: its receipt is assigned, so no second run is paid.
    await assert.rejects(() => port.submit(SLOW_JOB), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job", error.message);
      return true;
    });
    assert.equal((await b.local.stats()).jobsStarted, 0, "B ran the retry");
  });
});

Deno.test("who pays when the job failed over before its eviction: the worker that took it over and finished it is paid for the whole job, the lost worker nothing; one receipt, once", async () => {
  await withSlowClient(async ({ rest, summary, stats, reads, router, a, b }) => {
    assert.equal((rest.error as VeriflowError | undefined)?.code, "slow_reader");
    assert.equal(summary.error?.code, "slow_reader");
    assert.equal(stats.workerAttempts, 2, "no takeover: B was not lost under the job");
    const kept = await a.ends.toWorker.request(ReceiptRequestMessage, { jobId: summary.jobId });
    const receipt = kept.receipt ?? undefined;
    assert.ok(receipt !== undefined, "A kept no receipt for the router to ask for");
    assert.equal(receipt.tokenCount, JOB_TOKENS, "the taker's receipt is not over the whole job");
    const record = await eventually(
      () => reads.record(receiptId(receipt)),
      "A's receipt to be recorded in the router's ledger",
      { timeoutMs: 3_000 },
    );
    assert.equal(record.requester, toHex(router.publicKey), "recorded without the assignment");
    await reads.closeWindow();
    assert.equal((await reads.account(a.identity.publicKey)).balance, record.credit);
    assert.equal((await reads.account(b.identity.publicKey)).balance, 0, "the lost worker paid");
    assert.equal((await reads.stats()).received, 1, "the job's receipt reached the ledger twice");
  }, true);
});
