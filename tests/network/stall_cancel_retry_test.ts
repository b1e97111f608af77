/**
 * A worker the router cuts for a stall after it streamed tokens the client holds signs nothing
 * and may run the job again (review s78 vassign, F5): the router's stall cancel names only the
 * positions before the worker's run (`held_cancel.ts`, `inference/_remote_job.ts`), so the stalled
 * worker is paid nothing for its streamed tokens (`docs/PROTOCOL.md`, "Who pays, by how a job
 * ends") and keeps no receipt that would make it refuse the job. Before, the plain cancel read as
 * the requester's own: it signed a `cancelled` receipt nobody assigned, and refused the client's
 * retry (same nonce) as `duplicate_job` for good.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { GenerativeModel } from "../../actors/inference_models.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { recordedAssigned } from "./_assigned_job_router.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { clientJob, connectWorker, spawnRouter } from "./_proving_worker.ts";
import { Workers } from "./_router_doubles.ts";
import { WORKER_STAKE } from "./_assigned_job_router.ts";

/** The router's stall timeout in the test (its timers are manual). */
const STALL_MS = 1_000;
/** Tokens the worker streams before its first run stalls. */
const STREAMED = 3;
const MAX_TOKENS = 8;

/** The honest model, its first generation stopping after `k` tokens until `gate` resolves. */
function stallingModel(k: number, gate: Promise<void>): GenerativeModel {
  const model = f.honest as unknown as GenerativeModel;
  let generations = 0;
  return new Proxy(model, {
    get(target, prop) {
      if (prop === "generate") {
        return (...args: Parameters<GenerativeModel["generate"]>) => {
          const stalls = generations++ === 0;
          const inner = target.generate(...args).getReader();
          let sent = 0;
          return new ReadableStream<TokenChunk>({
            async pull(controller) {
              if (stalls && sent >= k) await gate;
              const next = await inner.read();
              if (next.done) controller.close();
              else {
                sent++;
                controller.enqueue(next.value);
              }
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

Deno.test("a worker cut for a stall after streaming tokens signs nothing: the job fails unpaid, and the client's retry (same nonce) runs on that worker and pays it once", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: "stall-retry-router" });
  const workerSystem = new ActorSystem({ name: "stall-retry-worker" });
  const router = Identity.generate();
  const worker = Identity.generate();
  const gate = Promise.withResolvers<void>();
  try {
    const prover = await workerSystem.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity: worker }),
    });
    const models = new StaticModels([stallingModel(STREAMED, gate.promise)]);
    const inference = await workerSystem.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
    });
    const local = new LocalInferencePort({ inference, models });
    const ends = await connectWorker(router, worker, local, workerSystem);
    const workers = new Workers([ends.toWorker]);
    const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, workers);
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const timers = new ManualTimers();
    const port = new NetworkInferencePort(networkRef, validator, router, {
      tokensPerEvent: 1,
      stallTimeoutMs: STALL_MS,
      timers,
    });
    const reads = ledgerReads(() => validator, clock);
    const job = clientJob("stall-retry", MAX_TOKENS);

    const handle = await port.submit(job);
    const reader = handle.tokens.getReader();
    for (let i = 0; i < STREAMED; i++) assert.equal((await reader.read()).value?.index, i);
    const next = reader.read().catch((error) => error);
    await timers.advance(STALL_MS);
    await next;
    const failed = await handle.done;
    assert.equal(failed.error?.code, "worker_stalled");
    assert.equal(failed.receipt, undefined);
    gate.resolve(); // the worker's model goes on, as a slow machine's would

    // Later the worker is no longer kept off the model; the client retries the same job.
    workers.avoided.clear();
    const retry = await port.submit(job);
    for await (const _ of retry.tokens) { /* the client reads every token */ }
    const done = await retry.done;
    assert.equal(done.error, undefined, `the retry failed: ${JSON.stringify(done.error)}`);
    assert.equal(done.worker, toHex(worker.publicKey));
    const receipt = done.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the retry ended without a receipt");
    assert.equal(receipt.tokenCount, MAX_TOKENS);
    await recordedAssigned({ reads }, receipt, "the retry's receipt to be recorded assigned");
    await reads.closeWindow();
    const credit = (await reads.record(receiptId(receipt)))!.credit;
    assert.ok(credit > 0);
    // Paid once, for the retry's whole job; nothing for the stalled run's streamed tokens.
    assert.equal((await reads.account(worker.publicKey)).balance, credit);
    await ends.toWorker.close();
    await ends.atWorker.close();
  } finally {
    gate.resolve();
    await routerSystem.shutdown();
    await workerSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
