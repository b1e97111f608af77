/**
 * A worker that lost a hedge race is not left holding a signed receipt for the job (review s78,
 * gap 3 of stop 77's `duplicate_job` refusal). The router asked a second worker to take a job
 * over beside the one that held it without a token (a hedge, `network/failover.ts`); the hedge's
 * token came first, so the router cancelled the first worker, whose own first token was already
 * on its way. That cancel was a plain one: the worker read it as its requester's explicit cancel
 * after one token handed on, signed a `cancelled` receipt over it (a token the client never got,
 * and a receipt the router never asked for, so unpaid), and refused the job as `duplicate_job` for
 * good. When the hedge worker was lost mid-stream the router asked that first worker to take the
 * job over, it refused, and the client's job failed with nobody paid. Now the router's cancel of a
 * worker whose tokens the client never got names what the client holds of that worker's run
 * (nothing: `held_cancel.ts`), the worker signs nothing, takes the job over, and is paid for it.
 *
 * Two workers (InferenceActor, ProverActor, the honest model) on in-memory links; the router's
 * ledger is real. The held worker's model waits for the test before its first token, and its link
 * to the router can be held, so its first token is sent (handed on) but not yet delivered when the
 * hedge's arrives. The router's hold runs on a fake clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { GenerativeModel } from "../../actors/inference_models.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { servePeer } from "../../network/peer_services.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { type ByteDuplex, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { toHex } from "../../protocols/hash.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { clientJob, spawnRouter } from "./_proving_worker.ts";
import { Workers } from "./_router_doubles.ts";
import { WORKER_STAKE } from "./_assigned_job_router.ts";

/** The router's queue hold (fake clock): past it, the hedge is asked. */
const HOLD_MS = 100;
/** The job's limit. */
const MAX_TOKENS = 8;
/** Tokens of the hedge worker the client reads before that worker is lost. */
const READ = 3;
/** A dead link's peer never ends its side: do not wait the default grace for it on close. */
const CLOSE_GRACE_MS = 50;

/** `duplex` with a gate on what its side writes: held, writes wait until released. */
function holdable(duplex: ByteDuplex) {
  let gate: PromiseWithResolvers<void> | undefined;
  let waiting = Promise.withResolvers<void>();
  const through = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      if (gate !== undefined) {
        waiting.resolve();
        await gate.promise;
      }
      controller.enqueue(chunk);
    },
  });
  through.readable.pipeTo(duplex.writable).catch(() => {});
  return {
    duplex: { readable: duplex.readable, writable: through.writable },
    hold() {
      gate = Promise.withResolvers<void>();
      waiting = Promise.withResolvers<void>();
    },
    /** Resolves once a write waits at the gate. */
    held: () => waiting.promise,
    release() {
      gate?.resolve();
      gate = undefined;
    },
  };
}

/** The honest model, whose first generation waits for `gate` before its first token. */
function gatedModel(gate: Promise<void>): GenerativeModel {
  const model = f.honest as unknown as GenerativeModel;
  return new Proxy(model, {
    get(target, prop) {
      if (prop === "generate") {
        return (...args: Parameters<GenerativeModel["generate"]>) => {
          const inner = target.generate(...args).getReader();
          return new ReadableStream<TokenChunk>({
            async pull(controller) {
              await gate;
              const next = await inner.read();
              if (next.done) controller.close();
              else controller.enqueue(next.value);
            },
            cancel: (reason) => inner.cancel(reason),
          }, { highWaterMark: 0 });
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A worker node on a link to `router` whose writes can be held; its model `model`. */
async function startWorker(name: string, router: Identity, model?: GenerativeModel) {
  const identity = Identity.generate();
  const system = new ActorSystem({ name });
  // As `_honest_inference.ts` spawns it, on `model`.
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity }),
  });
  const models = new StaticModels([model ?? f.honest]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
  });
  const local = new LocalInferencePort({ inference, models });
  const [a, b] = memoryDuplexPair();
  const link = holdable(b);
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: router, protocols, closeGraceMs: CLOSE_GRACE_MS }),
    Connection.open(link.duplex, { identity, protocols, closeGraceMs: CLOSE_GRACE_MS }),
  ]);
  servePeer(atWorker, router.publicKey, { system, inference: local });
  return {
    identity,
    local,
    link,
    toWorker,
    /** The worker is lost: its connection closes under what it streams. */
    die: () => atWorker.close(),
    async close() {
      link.release();
      await toWorker.close();
      await atWorker.close();
      await system.shutdown();
    },
  };
}

Deno.test("a worker the router cancelled as a hedge's loser, after its first token was sent, signs nothing for it: when the hedge worker is lost it takes the job over, finishes it, and is paid", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: "hedge-loser-router" });
  const router = Identity.generate();
  const gate = Promise.withResolvers<void>();
  const held = await startWorker("hedge-loser-held", router, gatedModel(gate.promise));
  const hedge = await startWorker("hedge-loser-hedge", router);
  try {
    const workers = new Workers([held.toWorker, hedge.toWorker]);
    const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, workers);
    for (const w of [held, hedge]) {
      await validator.ask({ type: "deposit", key: w.identity.publicKey, amount: WORKER_STAKE });
    }
    const timers = new ManualTimers();
    const port = new NetworkInferencePort(networkRef, validator, router, {
      tokensPerEvent: 1,
      queueHoldMs: HOLD_MS,
      timers,
    });
    const reads = ledgerReads(() => validator, clock);

    // The job starts on the held worker (first in line), which sends no token yet.
    const handle = await port.submit(clientJob("hedge-loser", MAX_TOKENS));
    assert.equal((await held.local.stats()).jobsStarted, 1);
    // Its first token is handed on (sent) but held on the link: not delivered.
    held.link.hold();
    gate.resolve();
    await held.link.held();

    // The client waits past the hold: the hedge takes the job, its token first.
    const reader = handle.tokens.getReader();
    const first = reader.read();
    await timers.advance(HOLD_MS);
    const token = await first;
    assert.ok(!token.done && token.value.index === 0);
    assert.equal((await hedge.local.stats()).jobsStarted, 1, "the hedge did not run the job");
    // The held worker's run ends under the router's cancel, then its link delivers again.
    await eventually(
      async () => (await held.local.stats()).activeJobs === 0,
      "the held worker's run to end",
      { timeoutMs: 3_000 },
    );
    held.link.release();

    // The client reads on from the hedge worker, which is then lost mid-stream.
    for (let i = 1; i < READ; i++) {
      const next = await reader.read();
      assert.ok(!next.done && next.value.index === i);
    }
    await hedge.die();
    // The job goes on: on the worker that lost the hedge, the only one left.
    let read = READ;
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      assert.equal(next.value.index, read++);
    }
    const done = await handle.done;
    assert.equal(done.error, undefined, `the job failed: ${done.error?.message}`);
    const whole = done.receipt as Receipt | undefined;
    assert.ok(whole !== undefined, "no receipt");
    assert.equal(done.worker, toHex(held.identity.publicKey), "another worker ended the job");
    assert.equal((await held.local.stats()).jobsStarted, 2, "the held worker did not take it over");
    await eventually(
      async () => (await reads.record(receiptId(whole)))?.requester !== undefined,
      "the takeover's receipt to be recorded assigned",
      { timeoutMs: 3_000 },
    );

    await reads.closeWindow();
    const credit = (await reads.record(receiptId(whole)))!.credit;
    assert.ok(credit > 0, "the takeover's receipt was recorded earning nothing");
    const paid = await reads.account(held.identity.publicKey);
    const lost = await reads.account(hedge.identity.publicKey);
    assert.equal(paid.balance, credit, "the worker that took the job over was not paid");
    assert.equal(paid.stake, WORKER_STAKE);
    assert.equal(lost.balance, 0, "the lost worker was paid");
  } finally {
    await held.close();
    await hedge.close();
    await routerSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
