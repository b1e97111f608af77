/**
 * A worker's proof data between its receipt and a challenge: the prover keeps the job and its proof
 * data durably for as long as a challenge can come, and no peer can keep a validator from them
 * (requests from hostile connections do not queue ahead of a validator's; a stalled NetworkActor
 * does not hold a proof fetch past its deadline).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  DEFAULT_PROOF_RETENTION_MS,
  type ProveHandle,
  ProverActor,
  type ProverActorOptions,
  type ProverMessage,
  type ProverStats,
} from "../../actors/prover_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";
import { type ServedProof, signServedProof, verifyServedProof } from "../../proof/served_proof.ts";
import { ProofStore } from "../../proof/proof_store.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { proveJob } from "../../proof/prover.ts";
import { SteeringRecord } from "../../proof/steering.ts";
import { runChallenge } from "../../actors/_run_challenge.ts";
import type { Actor } from "../../actors/actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { proofOf, UNREACHABLE } from "../../actors/_proof_fetch.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../../protocols/inference_messages.ts";
import { servePeer } from "../../network/peer_services.ts";
import {
  MAX_QUEUED_PROOF_REQUESTS_PER_PEER,
  PROOF_REQUESTS_AT_ONCE,
  ProofRequestQueue,
  ProofRequestsBusyError,
} from "../../network/proof_request_queue.ts";
import type { ProofData } from "../../proof/commitment.ts";

// -------------------------------------------------------------------------------------------------
// The prover keeps what a challenge can ask for — the job and its proof data — durably and only
// for as long as a challenge can come.

const identity = Identity.generate();

const job = (nonce: string): TextJob => scriptedJob(nonce, 8);

const chunks = scriptedChunks;

async function withProver(
  options: Omit<ProverActorOptions, "identity">,
  fn: (prover: ReturnType<ActorSystem["lookup"]> & object) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "prover-retention" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity, ...options }),
    });
    await fn(prover);
  } finally {
    await system.shutdown();
  }
}

async function prove(prover: { ask: <T>(m: ProverMessage) => Promise<T> }, nonce: string) {
  const j = job(nonce);
  const handle = await prover.ask<ProveHandle>({
    type: "prove",
    job: j,
    jobId: jobId(j),
    chunks: chunks(5),
  });
  return { job: j, id: receiptId(await handle.receipt) };
}

Deno.test("prover: a job and its proof data are kept durably across a restart while a challenge can come, then deleted", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_700_000_000_000 };
  const retention = 5 * 60_000;
  const options = { dir, now: () => clock.t, proofRetentionMs: retention, sweepEveryMs: 0 };
  try {
    let proved: { job: TextJob; id: string } | undefined;
    await withProver(options, async (prover) => {
      proved = await prove(prover, "first");
    });
    const { id } = proved!;
    // A restart: the record is on disk, job included, and served.
    const kept = await new ProofStore(dir, { retentionMs: retention }).get(id);
    assert.deepEqual(kept?.job, proved!.job);
    await withProver(options, async (prover) => {
      const served = await prover.ask<ServedProof | undefined>({
        type: "get_proof",
        receiptId: id,
      });
      assert.ok(served && verifyServedProof(served, id, identity.publicKey));
      assert.deepEqual(served.proof, kept?.proof);
      // Just inside the retention: a challenge can still come, so it stays.
      clock.t += retention - 1;
      await prover.ask({ type: "sweep" });
      assert.ok(await prover.ask({ type: "get_proof", receiptId: id }));
      // Past it (and past its minute's directory): no challenge can ask, so it is gone.
      clock.t += 2 * 60_000;
      await prover.ask({ type: "sweep" });
      assert.equal(await prover.ask({ type: "get_proof", receiptId: id }), undefined);
      const stats = await prover.ask<ProverStats>({ type: "stats" });
      assert.deepEqual({ stored: stats.stored, swept: stats.swept }, { stored: 0, swept: 1 });
    });
    const left: string[] = [];
    for await (const entry of Deno.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left, [], "nothing left behind: the directory does not grow with history");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: proof data of the old layout is still served, and deleted once past the retention", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: Date.now() };
  try {
    let id = "";
    await withProver({ dir: `${dir}/new`, sweepEveryMs: 0 }, async (prover) => {
      id = (await prove(prover, "legacy")).id;
    });
    // What the prover wrote before jobs were kept with proofs: <dir>/<receiptId>.cbor.
    const record = await new ProofStore(`${dir}/new`, { retentionMs: 1 }).get(id);
    await Deno.mkdir(`${dir}/old`);
    await Deno.writeFile(`${dir}/old/${id}.cbor`, encodeCbor(record!.proof));
    const options = { dir: `${dir}/old`, now: () => clock.t, sweepEveryMs: 0 };
    await withProver(options, async (prover) => {
      assert.ok(await prover.ask({ type: "get_proof", receiptId: id }));
      clock.t = Date.now() + DEFAULT_PROOF_RETENTION_MS + 1_000; // file times are the real clock's
      await prover.ask({ type: "sweep" });
      assert.equal(await prover.ask({ type: "get_proof", receiptId: id }), undefined);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: proof data is fsync'd before it is renamed into place, and its directory after", async () => {
  const dir = await Deno.makeTempDir();
  const events: string[] = [];
  const rename = Deno.rename;
  const { syncData, sync } = Deno.FsFile.prototype;
  (Deno as { rename: typeof Deno.rename }).rename = (from, to) => {
    events.push(`rename ${String(to).endsWith(".cbor") ? "proof" : "other"}`);
    return rename(from, to);
  };
  Deno.FsFile.prototype.syncData = function () {
    events.push("sync file");
    return syncData.call(this);
  };
  Deno.FsFile.prototype.sync = function () {
    events.push("sync file or directory");
    return sync.call(this);
  };
  try {
    await withProver({ dir, sweepEveryMs: 0 }, async (prover) => {
      events.length = 0;
      await prove(prover, "durable");
    });
    const renamed = events.indexOf("rename proof");
    assert.ok(renamed > 0, `the proof is renamed into place: ${events.join(", ")}`);
    assert.match(events[renamed - 1], /^sync file/, `synced before the rename: ${events}`);
    assert.match(events[renamed + 1] ?? "", /directory/, `directory synced after: ${events}`);
  } finally {
    (Deno as { rename: typeof Deno.rename }).rename = rename;
    Object.assign(Deno.FsFile.prototype, { syncData, sync });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: a burst of jobs beyond the memory bound is served in full after a restart (nothing a challenge needs lives only in memory)", async () => {
  const dir = await Deno.makeTempDir();
  const options = { dir, maxProofs: 4, sweepEveryMs: 0 };
  try {
    const ids: string[] = [];
    await withProver(options, async (prover) => {
      const burst = Array.from({ length: 24 }, (_, i) => prove(prover, `burst-${i}`));
      for (const { id } of await Promise.all(burst)) ids.push(id);
    });
    await withProver(options, async (prover) => {
      for (const id of ids) {
        const served = await prover.ask<ServedProof | undefined>({
          type: "get_proof",
          receiptId: id,
        });
        assert.ok(served && verifyServedProof(served, id, identity.publicKey), `proof of ${id}`);
      }
      assert.equal((await prover.ask<ProverStats>({ type: "stats" })).stored, ids.length);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// A worker's proof data between its receipt and the challenge.

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

// -------------------------------------------------------------------------------------------------
// Who can keep a validator from a worker's proof data.
//
// 1. `inference.get_proof` from any peer went straight into the prover's one mailbox, first come
//    first served: hostile connections flooding it put their requests ahead of an honest
//    validator's, whose wait grew with the flood (300 connections × 1,024 in flight × ~0.18 ms
//    ≈ 55 s, near the 60 s proof deadline; the honest worker is then slashed for withholding).
//    Shown by counting the prover's answers ahead of the honest request, no real load.
// 2. A stalled NetworkActor kept a proof fetch past its deadline for as long as the actor
//    system's ask timeout per lookup (30 s each at the node's default; for good without one).

/** A prover that records the order of the `get_proof` it answers, held until released. */
class GatedProver implements Actor<ProverMessage> {
  readonly order: string[] = [];
  readonly gate = Promise.withResolvers<void>();
  async receive(message: ProverMessage): Promise<undefined> {
    if (message.type !== "get_proof") return undefined;
    this.order.push(message.receiptId);
    await this.gate.promise;
    return undefined;
  }
}

/** Poll (event-loop turns, no deadline raced) until `done`. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 5_000; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`never: ${what}`);
}

async function worker() {
  const system = new ActorSystem({ name: "worker" });
  const prover = new GatedProver();
  await system.spawn<ProverMessage>({ name: "node/prover", factory: () => prover });
  const identity = Identity.generate();
  const open: Connection[] = [];
  async function connect(peer: Identity) {
    const [a, b] = memoryDuplexPair();
    const [atPeer, atWorker] = await Promise.all([
      Connection.open(a, { identity: peer, protocols: [INFERENCE_PROTOCOL] }),
      Connection.open(b, { identity, protocols: [INFERENCE_PROTOCOL] }),
    ]);
    servePeer(atWorker, peer.publicKey, { system, prover: "node/prover" });
    open.push(atPeer, atWorker);
    return { atPeer, atWorker };
  }
  async function close() {
    prover.gate.resolve();
    await Promise.all(open.map((c) => c.close().catch(() => {})));
    await system.shutdown();
  }
  return { prover, connect, close };
}

/** Receipt ids (any gossiped id may be named; none of these is stored). */
const ID: Record<string, string> = {
  plug: "00".repeat(32),
  flood: "11".repeat(32),
  honest: "22".repeat(32),
};
const ask = (c: Connection, name: string) =>
  c.request(ProofRequestMessage, { receiptId: ID[name] }, { timeoutMs: 120_000 });

Deno.test("a flood of get_proof from other peers does not queue ahead of a validator's request: it waits behind at most one request per other peer", async () => {
  const w = await worker();
  try {
    // One request in hand at the prover holds everything behind it while the flood arrives.
    const plug = await w.connect(Identity.generate());
    const plugged = ask(plug.atPeer, "plug").catch(() => undefined);
    await until(() => w.prover.order.length === 1, "the plug reached the prover");
    const HOSTILE = 24;
    const EACH = 40;
    const floods: Promise<unknown>[] = [];
    const hostile = await Promise.all(
      Array.from({ length: HOSTILE }, () => w.connect(Identity.generate())),
    );
    for (const { atPeer } of hostile) {
      for (let i = 0; i < EACH; i++) floods.push(ask(atPeer, "flood").catch(() => undefined));
    }
    await until(
      () => hostile.every(({ atWorker }) => atWorker.stats().inboundRequests === EACH),
      "the flood arrived",
    );
    const honest = await w.connect(Identity.generate());
    const answer = ask(honest.atPeer, "honest");
    await until(() => honest.atWorker.stats().inboundRequests === 1, "the honest request arrived");
    w.prover.gate.resolve();
    assert.deepEqual(await answer, { served: null });
    const ahead = w.prover.order.indexOf(ID.honest) - 1; // the plug was first either way
    // First come first served put all HOSTILE × EACH (960) ahead; at 300 connections × 1,024
    // that is 307,200 × 0.18 ms = 55 s of a 60 s deadline. In turn: at most one per other peer
    // (and the few already handed to the prover), whatever each peer queued.
    assert.ok(
      ahead <= HOSTILE + PROOF_REQUESTS_AT_ONCE,
      `${ahead} requests answered before the validator's (${HOSTILE} other peers)`,
    );
    await Promise.all([plugged, ...floods]);
  } finally {
    await w.close();
  }
});

Deno.test("one peer key (over several connections) gets at most its share of get_proof queued; the rest is refused with an error, not 'none'", async () => {
  const w = await worker();
  try {
    const plug = await w.connect(Identity.generate());
    const plugged = ask(plug.atPeer, "plug").catch(() => undefined);
    await until(() => w.prover.order.length === 1, "the plug reached the prover");
    const flooder = Identity.generate();
    const links = await Promise.all([w.connect(flooder), w.connect(flooder)]);
    const EACH = 200; // under a connection's 1,024 in flight, over the key's share in all
    let refusedSoFar = 0;
    const answers = links.flatMap(({ atPeer }) =>
      Array.from({ length: EACH }, () =>
        ask(atPeer, "flood").then(
          (body) => ({ body }),
          (error) => {
            refusedSoFar++;
            return { error: error as { code?: string } };
          },
        ))
    );
    const over = 2 * EACH - MAX_QUEUED_PROOF_REQUESTS_PER_PEER;
    await until(() => refusedSoFar === over, "the requests over the key's share refused");
    // Meanwhile another peer is served as usual.
    const honest = await w.connect(Identity.generate());
    const answer = ask(honest.atPeer, "honest");
    await until(() => honest.atWorker.stats().inboundRequests === 1, "the honest request arrived");
    w.prover.gate.resolve();
    assert.deepEqual(await answer, { served: null });
    const settled = await Promise.all(answers);
    const refused = settled.filter((a) => "error" in a);
    assert.equal(refused.length, over);
    for (const a of refused) {
      assert.equal((a as { error: { code?: string } }).error.code, "proof_requests_busy");
    }
    await plugged;
  } finally {
    await w.close();
  }
});

/** A NetworkActor that takes messages and never answers (stuck in a long handler). */
class StalledNetwork implements Actor<NetworkMessage> {
  readonly stuck = Promise.withResolvers<void>();
  async receive(): Promise<void> {
    await this.stuck.promise;
  }
}

Deno.test("a stalled NetworkActor does not keep a proof fetch past its deadline: it ends as no route (worker_unreachable), the worker not slashed", async () => {
  const system = new ActorSystem({ name: "validator" }); // the node's 30 s ask timeout
  const stalled = new StalledNetwork();
  await system.spawn<NetworkMessage>({ name: "node/network", factory: () => stalled });
  const abort = new AbortController();
  const DEADLINE_MS = 300;
  // Only its worker key and id are read before the network is asked.
  const receipt = { worker: Identity.generate().publicKey } as unknown as Receipt;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const started = performance.now();
    const fetched = proofOf(receipt, {
      source: {},
      network: () => system.lookup<NetworkMessage>("node/network"),
      deadlineMs: DEADLINE_MS,
      signal: abort.signal,
      relay: undefined,
    }).catch((error) => error);
    const late = Symbol("still open");
    const ended = await Promise.race([
      fetched,
      new Promise((r) => timer = setTimeout(() => r(late), DEADLINE_MS + 5_000)),
    ]);
    assert.notEqual(ended, late, "the fetch was still open 5 s past its deadline");
    assert.equal(ended, UNREACHABLE, "no route at all: the validator's own isolation");
    assert.ok(performance.now() - started < DEADLINE_MS + 5_000);
  } finally {
    clearTimeout(timer);
    abort.abort(new Error("test over"));
    stalled.stuck.resolve();
    await system.shutdown();
  }
});

Deno.test("a get_proof refused as busy is no withholding: the validator asks again and takes the worker's signed answer before the deadline", async () => {
  const workerId = Identity.generate();
  const validatorId = Identity.generate();
  const proof: ProofData = {
    scheme: "vf-fp2",
    chunkSize: 16,
    tokenBytes: 2,
    tokens: new Uint8Array([0, 7]),
    fingerprints: new Uint8Array(4),
  };
  const atWorkerSide = new ActorSystem({ name: "worker" });
  await atWorkerSide.spawn<ProverMessage>({
    name: "node/prover",
    factory: () => ({
      receive: (m: ProverMessage) =>
        m.type === "get_proof" ? signServedProof(m.receiptId, proof, workerId) : undefined,
    }),
  });
  /** The worker's queue, its first answer a refusal (as when the key's share is taken). */
  class RefusingOnce extends ProofRequestQueue {
    refused = 0;
    override run<T>(peer: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      if (this.refused++ === 0) return Promise.reject(new ProofRequestsBusyError(0));
      return super.run(peer, task, signal);
    }
  }
  const queue = new RefusingOnce();
  const [a, b] = memoryDuplexPair();
  const [atValidator, atWorker] = await Promise.all([
    Connection.open(a, { identity: validatorId, protocols: [INFERENCE_PROTOCOL] }),
    Connection.open(b, { identity: workerId, protocols: [INFERENCE_PROTOCOL] }),
  ]);
  servePeer(atWorker, validatorId.publicKey, {
    system: atWorkerSide,
    prover: "node/prover",
    proofRequests: queue,
  });
  const atValidatorSide = new ActorSystem({ name: "validator" });
  await atValidatorSide.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => ({
      receive: (m: NetworkMessage) =>
        m.type === "connection_to" ? atValidator : m.type === "peers" ? [] : undefined,
    }),
  });
  const abort = new AbortController();
  try {
    const receipt = { worker: workerId.publicKey } as unknown as Receipt;
    const served = await proofOf(receipt, {
      source: {},
      network: () => atValidatorSide.lookup<NetworkMessage>("node/network"),
      deadlineMs: 60_000,
      signal: abort.signal,
      relay: undefined,
    });
    assert.equal(queue.refused, 2, "refused once, asked again");
    assert.deepEqual((served as ServedProof).proof, proof, "the signed answer, not withheld");
  } finally {
    abort.abort(new Error("test over"));
    await atValidator.close();
    await atWorker.close();
    await atWorkerSide.shutdown();
    await atValidatorSide.shutdown();
  }
});
