/**
 * A job's stake lock is checked before the work (review s78 vprompt F2): the router ranks a
 * worker as backed only when its free stake covers the job's worst-case lock, priced as the
 * ledger prices it (`network/_job_stake_lock.ts`, `worker_choice.ts` rule 3), and a worker's
 * refusal `insufficient_stake` (`node/_stake_backed_port.ts`) sends the job to the next worker
 * without counting against the one that refused.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { jobPromptTokens, jobStakeLock } from "../../network/_job_stake_lock.ts";
import { chooseWorker, type WorkerCandidate } from "../../network/worker_choice.ts";
import { refusingUnbacked, StakeUnknownError } from "../../node/_stake_backed_port.ts";
import { isCapacityRefusal } from "../../network/_failure_codes.ts";
import { Ledger } from "../../proof/ledger.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { MAX_JOB_INPUT_BYTES } from "../../protocols/prompt_token_bound.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { Recorder, Workers } from "./_router_doubles.ts";
import { receiptFor } from "./_scripted_worker_fixture.ts";
import { job, script, served, TOKENS } from "./_scripted_workers.ts";
import { httpStatusOf } from "../../server/http_errors.ts";

/** The prompt tokens the router's tokenizer counts for every job here. */
const PROMPT_TOKENS = 200;

function candidate(key: string, stake: number, running = 0): WorkerCandidate {
  return {
    key,
    models: [served.cid],
    convicted: false,
    inFlight: 0,
    load: { running, queued: 0, slots: 4, queueLimit: 0 },
    standing: { stake, locked: 0, balance: 0 },
  };
}

Deno.test("a job's worst-case lock is what a ledger locks for the receipt of that worst case: maxTokens output and the router's prompt count", async () => {
  const dir = await Deno.makeTempDir();
  const ledger = await Ledger.open(dir, Identity.generate());
  try {
    const worker = Identity.generate();
    const requester = Identity.generate();
    await ledger.deposit(worker.publicKey, 1_000_000);
    const forwarded: TextJob = { ...job("worst"), requester: toHex(requester.publicKey) };
    const { sig: _s, worker: _w, ...unsigned } = receiptFor(forwarded, worker, "abcd", TOKENS);
    const receipt = signReceipt({ ...unsigned, promptTokens: PROMPT_TOKENS }, worker) as Receipt;
    await ledger.recordReceipt(receipt, {
      assignment: signAssignment(
        { job: forwarded, worker: worker.publicKey, issuedAt: 0 },
        requester,
      ),
    });
    assert.equal(ledger.account(worker.publicKey).locked, jobStakeLock(forwarded, PROMPT_TOKENS));
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the prompt a router prices: its exact count, the model's window where it cannot count, else a byte bound of the prompt and the largest input", () => {
  const plain = { ...job("bound"), prompt: "héllo" };
  assert.equal(jobPromptTokens(plain, 3), 3);
  assert.equal(jobPromptTokens(plain, { atMost: 255 }), 255);
  // Six UTF-8 bytes, and one token for a marker a tokenizer may prepend.
  assert.equal(jobPromptTokens(plain, undefined), 7);
  const withInput = { ...plain, input: "bafkreia" };
  assert.equal(jobPromptTokens(withInput, undefined), 7 + MAX_JOB_INPUT_BYTES);
});

Deno.test("the router ranks as backed only a worker whose free stake covers the job's lock: the idle small-stake worker goes after a busier one that can back the receipt (review s78 F2a)", () => {
  const forwarded = { ...job("rank"), params: { ...job("rank").params, maxTokens: 1 } };
  const lock = jobStakeLock(forwarded, PROMPT_TOKENS);
  // 20 × (1 + 200 / 16) at price 1.
  assert.equal(lock, 270);
  const small = candidate("small", lock - 1, 0);
  const big = candidate("big", 1_000_000, 2);
  assert.equal(chooseWorker([small, big], { model: served.cid, lock })?.key, "big");
  // Exactly covered is backed: the idle one first again, by load.
  const enough = candidate("enough", lock, 0);
  assert.equal(chooseWorker([enough, big], { model: served.cid, lock })?.key, "enough");
  // Without a lock (a caller that gives none), any free stake backs it, as before.
  assert.equal(chooseWorker([small, big], { model: served.cid })?.key, "small");
});

Deno.test("a worker not backed for the job is still chosen where no backed one is eligible, by the other rules, as an unstaked one always was", () => {
  const lock = 1_000;
  const busySmall = candidate("busy-small", 10, 3);
  const idleSmall = candidate("idle-small", 10, 0);
  const pick = chooseWorker([busySmall, idleSmall], { model: served.cid, lock });
  assert.equal(pick?.key, "idle-small");
  const unstaked: WorkerCandidate = { ...candidate("unstaked", 0, 0), standing: undefined };
  assert.equal(chooseWorker([unstaked], { model: served.cid, lock })?.key, "unstaked");
});

/** A NetworkActor double that hands out its workers in order and keeps each lookup's lock. */
class LockRecordingWorkers extends Workers {
  readonly locks: (number | undefined)[] = [];
  override receive(message: NetworkMessage): unknown {
    if (message.type === "worker") this.locks.push(message.lock);
    return super.receive(message);
  }
}

/**
 * A router over workers serving `ports` (picked in that order), over in-memory connections; the
 * router counts `PROMPT_TOKENS` for each job.
 */
async function routerOver(ports: InferencePort[]) {
  const system = new ActorSystem({ name: "stake-routing" });
  const links: Connection[] = [];
  const toWorkers: Connection[] = [];
  for (const port of ports) {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: Identity.generate(), protocols }),
    ]);
    serveInference(atWorker, port);
    links.push(toWorker, atWorker);
    toWorkers.push(toWorker);
  }
  const workers = new LockRecordingWorkers(toWorkers, [served]);
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => workers,
  });
  const validator = await system.spawn({ name: "router/validator", factory: () => new Recorder() });
  const port = new NetworkInferencePort(network, validator, Identity.generate(), {
    countPromptTokens: () => PROMPT_TOKENS,
  });
  const close = async () => {
    for (const c of links) await c.close();
    await system.shutdown();
  };
  return { port, workers, close };
}

/** A worker's port whose own ledger shows `free` free stake. */
function stakedWorker(inner: InferencePort, free: number): InferencePort {
  return refusingUnbacked(inner, {
    self: toHex(Identity.generate().publicKey),
    ledger: () => ({
      account: () => ({ balance: 0, stake: free, locked: 0 }),
      recorded: () => false,
    }),
    count: () => PROMPT_TOKENS,
  });
}

Deno.test("a worker that refuses a job insufficient_stake before the work: the router asks the next worker, the client gets every token, and the refuser is not kept off the model", async () => {
  const short = new StallingPort(served, script);
  const backed = new StallingPort(served, script);
  const lock = jobStakeLock(job("next"), PROMPT_TOKENS);
  const t = await routerOver([stakedWorker(short, lock - 1), stakedWorker(backed, lock)]);
  try {
    const handle = await t.port.submit(job("next"));
    const got = [];
    for await (const token of handle.tokens) got.push(token.index);
    assert.deepEqual(got, script.map((s) => s.index));
    assert.equal((await handle.done).finishReason, "length");
    assert.deepEqual([short.submits, backed.submits], [0, 1]);
    assert.equal(t.workers.avoided.size, 0, "the refusing worker was kept off the model");
    // Each lookup asked for workers backed for the job's worst case, as the ledger prices it.
    assert.deepEqual(t.workers.locks, [lock, lock]);
  } finally {
    await t.close();
  }
});

Deno.test("when every worker refuses insufficient_stake the client is told so (503), not that a worker failed", async () => {
  const a = new StallingPort(served, script);
  const b = new StallingPort(served, script);
  const t = await routerOver([stakedWorker(a, 1), stakedWorker(b, 1)]);
  try {
    const error = await t.port.submit(job("none")).then(() => undefined, (e) => e);
    assert.ok(error instanceof VeriflowError, String(error));
    assert.equal(error.code, "insufficient_stake");
    assert.equal(httpStatusOf(error), 503);
    assert.deepEqual([a.submits, b.submits], [0, 0]);
    assert.equal(t.workers.avoided.size, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a worker whose own validator is restarting (its ledger not open) refuses as full, not as failed: the router asks the next worker without spending a try or keeping it off the model, and with nobody else the client gets a 503", async () => {
  const restarting = () =>
    refusingUnbacked(new StallingPort(served, script), {
      self: toHex(Identity.generate().publicKey),
      ledger: () => undefined,
      count: () => PROMPT_TOKENS,
    });
  const refusal = new StakeUnknownError();
  assert.ok(isCapacityRefusal(refusal), "not a refusal as full: it would spend the job's tries");
  const closed = restarting();
  const backed = new StallingPort(served, script);
  const t = await routerOver([closed, stakedWorker(backed, jobStakeLock(job("r"), 200))]);
  try {
    const handle = await t.port.submit(job("restarting"));
    const got = [];
    for await (const token of handle.tokens) got.push(token.index);
    assert.deepEqual(got, script.map((s) => s.index));
    assert.equal((await handle.done).finishReason, "length");
    assert.equal(backed.submits, 1);
    assert.equal(t.workers.avoided.size, 0, "the restarting worker was kept off the model");
  } finally {
    await t.close();
  }
  const alone = await routerOver([restarting()]);
  try {
    const error = await alone.port.submit(job("alone")).then(() => undefined, (e) => e);
    assert.equal(error?.code, "insufficient_stake");
    assert.equal(httpStatusOf(error), 503);
    assert.equal(alone.workers.avoided.size, 0);
  } finally {
    await alone.close();
  }
});
