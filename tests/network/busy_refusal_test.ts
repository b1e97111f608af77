/**
 * Workers whose hellos claim room and that refuse every job as full (`too_many_jobs`): four
 * fresh keys did so in a review, ranked ahead of a busy honest worker on their claim, and took
 * every try of every job, so the router refused its clients (429) while the honest worker had
 * room. Their refusals spend none of a job's tries, and they are asked last for a while after.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { MAX_WORKERS_ASKED_PER_JOB } from "../../network/failover.ts";
import { Identity } from "../../protocols/identity.ts";
import type { PeerLoad } from "../../protocols/peer_hello.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, job, TwoTokenWorker } from "./_router_fixture.ts";

const FIRST_WHILE_MS = 1_000;
const IDLE: PeerLoad = { running: 0, queued: 0, slots: 8, queueLimit: 8 };
const BUSY: PeerLoad = { running: 1, queued: 0, slots: 4, queueLimit: 4 };

/** A worker that runs a two-token job, or refuses it as full while `full`. */
class Worker extends TwoTokenWorker {
  constructor(full: boolean) {
    super(full, "too_many_jobs", "full");
  }
  get full(): boolean {
    return this.refuses;
  }
  set full(full: boolean) {
    this.refuses = full;
  }
}

/** A router (a real network actor) whose port runs on a fake clock, and its workers. */
async function router() {
  const system = new ActorSystem({ name: "busy-refusal-test" });
  const net: ActorRef<NetworkMessage> = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const clock = { now: 0 };
  const busy = new BusyRefusals({ firstMs: FIRST_WHILE_MS, now: () => clock.now });
  const port = new NetworkInferencePort(net, undefined, undefined, {}, busy);
  let connected = 0;
  /** Connect `worker`; it says `load` in a signed hello. */
  const connect = async (worker: Worker, load: PeerLoad) => {
    await connectWorker(net, worker, load);
    connected++;
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.filter((p) => p.models.length > 0 && p.load).length === connected
        ? true
        : undefined;
    }, "every worker listed and said its load");
  };
  /** Run one job to its end; its error code, if it was refused. */
  const run = async (nonce: string): Promise<string | undefined> => {
    try {
      const handle = await port.submit(job(nonce));
      for await (const _ of handle.tokens) { /* run it */ }
      assert.equal((await handle.done).finishReason, "length");
      return undefined;
    } catch (error) {
      return (error as VeriflowError).code;
    }
  };
  return { clock, connect, run, close: () => system.shutdown() };
}

Deno.test("five workers that claim to be idle and refuse every job as full cost no job: each runs on the busy honest worker, and the refusers are asked last until their while ends", async () => {
  const r = await router();
  try {
    const honest = new Worker(false);
    await r.connect(honest, BUSY);
    const refusers = [0, 1, 2, 3, 4].map(() => new Worker(true));
    for (const w of refusers) await r.connect(w, IDLE);
    const submits = () => refusers.map((w) => w.submits);

    // The first job asks the five (they rank first on their claim), then the honest worker.
    assert.equal(await r.run("j0"), undefined);
    assert.deepEqual(submits(), [1, 1, 1, 1, 1]);
    // Their claim is contradicted: the next jobs go straight to the honest worker.
    for (let i = 1; i < 10; i++) assert.equal(await r.run(`j${i}`), undefined);
    assert.deepEqual(submits(), [1, 1, 1, 1, 1]);
    assert.equal(honest.ran, 10);

    // After the first while they are asked again, refuse again, and are asked last twice as long.
    r.clock.now += FIRST_WHILE_MS;
    assert.equal(await r.run("j10"), undefined);
    assert.deepEqual(submits(), [2, 2, 2, 2, 2]);
    r.clock.now += FIRST_WHILE_MS * 1.5;
    assert.equal(await r.run("j11"), undefined);
    assert.deepEqual(submits(), [2, 2, 2, 2, 2]);
    assert.equal(honest.ran, 12);
  } finally {
    await r.close();
  }
});

Deno.test("an honest worker that claimed room and was full is asked last for a while, then takes jobs again and is forgiven", async () => {
  const r = await router();
  try {
    const filled = new Worker(true); // its hello lags: it says idle, it is full
    const other = new Worker(false);
    await r.connect(filled, IDLE);
    await r.connect(other, BUSY);
    assert.equal(await r.run("a0"), undefined);
    filled.full = false; // a slot freed; its next hello is not in yet
    assert.equal(await r.run("a1"), undefined);
    assert.deepEqual([filled.submits, other.ran], [1, 2], "it does not keep winning the choice");
    r.clock.now += FIRST_WHILE_MS;
    assert.equal(await r.run("a2"), undefined);
    assert.deepEqual([filled.ran, other.ran], [1, 2], "asked again after its while, it ran it");
    // Forgiven: a refusal now is asked last for the first while again, not twice as long.
    filled.full = true;
    assert.equal(await r.run("a3"), undefined);
    r.clock.now += FIRST_WHILE_MS;
    filled.full = false;
    assert.equal(await r.run("a4"), undefined);
    assert.deepEqual([filled.ran, other.ran], [2, 3]);
  } finally {
    await r.close();
  }
});

Deno.test("a job asks at most MAX_WORKERS_ASKED_PER_JOB workers that refuse as full; the next job asks the ones not yet refused and runs", async () => {
  const r = await router();
  try {
    const honest = new Worker(false);
    await r.connect(honest, BUSY);
    const refusers = Array.from({ length: MAX_WORKERS_ASKED_PER_JOB + 1 }, () => new Worker(true));
    for (const w of refusers) await r.connect(w, IDLE);
    const asked = () => refusers.reduce((n, w) => n + w.submits, 0);
    assert.equal(await r.run("b0"), "too_many_jobs");
    assert.equal(asked(), MAX_WORKERS_ASKED_PER_JOB);
    assert.equal(await r.run("b1"), undefined);
    assert.equal(asked(), MAX_WORKERS_ASKED_PER_JOB + 1);
    assert.equal(honest.ran, 1);
  } finally {
    await r.close();
  }
});
