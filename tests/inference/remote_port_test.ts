import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import {
  RemoteInferencePort,
  serveInference,
  type ServeInferenceOptions,
} from "../../inference/remote_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { eventually, params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";

let nonce = 0;
function textJob(model: string, maxTokens: number): TextJob {
  return { kind: "text", model, prompt: "x", params: params({ maxTokens }), nonce: `r${++nonce}` };
}

/** A worker (InferenceActor behind serveInference) and a remote port to it, in memory. */
async function withRemote(
  model: ScriptedModel,
  body: (
    remote: RemoteInferencePort,
    worker: Connection,
    local: LocalInferencePort,
  ) => Promise<void>,
  options: { queueLimit?: number; concurrency?: number } = {},
  serve: ServeInferenceOptions = {},
): Promise<void> {
  const system = new ActorSystem({ name: "remote-port-test" });
  const models = new StaticModels([model]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, ...options }),
  });
  const local = new LocalInferencePort({ inference, models });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  serveInference(worker, local, serve);
  try {
    await body(new RemoteInferencePort(client), worker, local);
  } finally {
    await client.close();
    await worker.close();
    await system.shutdown();
  }
}

Deno.test("a remote job streams the same tokens and summary as the local port, and the model list crosses", async () => {
  const model = new ScriptedModel();
  await withRemote(model, async (remote, _worker, local) => {
    const models = await remote.models();
    assertEquals(models.map((m) => m.cid), [model.info.cid]);
    const viaWire = await remote.submit(textJob(model.info.cid, 5));
    const wireTokens = [];
    for await (const t of viaWire.tokens) wireTokens.push(t);
    const direct = await local.submit(textJob(model.info.cid, 5));
    const directTokens = [];
    for await (const t of direct.tokens) directTokens.push(t);
    assertEquals(wireTokens, directTokens);
    const summary = await viaWire.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(summary.usage.completionTokens, 5);
    assertEquals(summary.jobId, viaWire.jobId);
    assertEquals(viaWire.model.cid, model.info.cid);
    assertEquals((await remote.stats()).jobsFinished, 1);
  });
});

Deno.test("cancelling the remote token stream stops the job on the worker within its window", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(model, async (remote, _worker, local) => {
    const handle = await remote.submit(textJob(model.info.cid, 2000));
    const reader = handle.tokens.getReader();
    await reader.read();
    await reader.read();
    await reader.cancel();
    assertEquals((await handle.done).finishReason, "cancelled");
    await eventually(async () => (await local.stats()).jobsCancelled === 1, "the worker's cancel");
    // The worker computed what the stream's credit window let it run ahead, no more.
    assert(model.steps < 2 + 32, `the worker went on: ${model.steps} steps`);
  });
});

Deno.test("a refusal on the worker rejects the remote submit with the worker's code", async () => {
  const model = new ScriptedModel({ gated: true });
  await withRemote(model, async (remote) => {
    const running = await remote.submit(textJob(model.info.cid, 3));
    const refused = await remote.submit(textJob(model.info.cid, 3)).catch((e) => e);
    assertEquals((refused as { code: string }).code, "too_many_jobs");
    await assertRejects(() => remote.submit(textJob("bafkreinothere", 3)));
    running.cancel();
  }, { concurrency: 1, queueLimit: 0 });
});

Deno.test("a worker that goes away mid-stream fails the remote tokens with a typed error and done says error", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(model, async (remote, worker) => {
    const handle = await remote.submit(textJob(model.info.cid, 2000));
    const reader = handle.tokens.getReader();
    await reader.read();
    await worker.close();
    const failure = await (async () => {
      for (;;) if ((await reader.read()).done) return undefined;
    })().catch((e) => e);
    assertEquals((failure as { code: string }).code, "connection_closed");
    const summary = await handle.done;
    assertEquals(summary.finishReason, "error");
    assertEquals(summary.error?.code, "connection_closed");
  });
});

Deno.test("a requester that stops reading loses its job after the stall time, and one peer cannot take every slot", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(
    model,
    async (remote, _worker, local) => {
      const idle = await remote.submit(textJob(model.info.cid, 2000));
      // Never read: the worker sends its credit window's worth, then waits for credit.
      await eventually(async () => (await local.stats()).jobsCancelled === 1, "the stalled job");
      assert(model.steps < 64, `the worker went on: ${model.steps} steps`);
      idle.cancel();
      const first = await remote.submit(textJob(model.info.cid, 3));
      const refused = await remote.submit(textJob(model.info.cid, 3)).catch((e) => e);
      assertEquals((refused as { code: string }).code, "too_many_jobs");
      for await (const _ of first.tokens) { /* drain */ }
      await first.done;
      // Its slot is back once it ended.
      const again = await remote.submit(textJob(model.info.cid, 3));
      for await (const _ of again.tokens) { /* drain */ }
      assertEquals((await again.done).finishReason, "length");
    },
    { concurrency: 4 },
    { readerStallMs: 50, maxJobs: 1 },
  );
});
