/**
 * The router's job counters (`NetworkInferencePort.stats`): a worker connection's counts are kept
 * when it closes, moved from the open ports to the closing ones and folded in once their jobs end.
 * A `stats()` call that is running while a connection closes must count that connection once: it
 * read the open ports, awaited, and then read the closing ones, where the port had moved meanwhile,
 * so its jobs were counted twice, and the next call's total was lower (a counter that went down on
 * `/metrics`). A client's job is counted once however many workers it ran on, and its failovers
 * and hedges apart (review s71).
 */
import { assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { InferenceStats } from "../../inference/inference_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { proveJob } from "../../proof/prover.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { type InferenceEvent, SubmitMessage } from "../../protocols/inference_messages.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { inferenceCollector } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { parsePrometheusText, valueOf } from "../server/_prometheus_text.ts";
import { jobFor, linked, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  router,
  scriptedWorker,
  signed,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** Stands in for the NetworkActor: one worker connection. */
class OneWorker implements Actor<NetworkMessage> {
  constructor(readonly connection: Connection, readonly models: unknown[]) {}
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker") return this.connection;
    if (message.type === "worker_models") return this.models;
    return undefined;
  }
}

/** Stands in for the ValidatorActor. */
class Nobody implements Actor<ValidatorMessage> {
  receive(): undefined {
    return undefined;
  }
}

Deno.test("red team s56: a stats() call running while a worker's connection closes counts its jobs once", async () => {
  const worker = Identity.generate();
  const model = new ScriptedModel();
  const system = new ActorSystem({ name: "router-stats" });
  const inference = await system.spawn<InferenceMessage>({
    name: "worker/inference",
    factory: () =>
      new InferenceActor({
        models: new StaticModels([model]),
        prover: async (job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) =>
          (await proveJob(job, chunks, worker)).receipt,
      }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  serveInference(
    atWorker,
    new LocalInferencePort({ inference, models: new StaticModels([model]) }),
  );
  const network = await system.spawn<NetworkMessage>({
    name: "relay/network",
    factory: () => new OneWorker(toWorker, [model.info]),
  });
  const validator = await system.spawn<ValidatorMessage>({
    name: "relay/validator",
    factory: () => new Nobody(),
  });
  const port = new NetworkInferencePort(network, validator);
  try {
    // Asked for the router's totals as the connection closes (a scrape, a heartbeat, the
    // dashboard: whatever runs in that turn), before the router has moved the port.
    let during: Promise<InferenceStats> | undefined;
    toWorker.closed.then(() => during = port.stats());
    const job: TextJob = {
      kind: "text",
      model: model.info.cid,
      prompt: "x",
      params: params({ maxTokens: 4 }),
      nonce: "n",
    };
    const handle = await port.submit(job);
    for await (const _ of handle.tokens) { /* relay every token */ }
    await handle.done;
    const before = await port.stats();
    assertEquals([before.jobsStarted, before.jobsFinished], [1, 1]);
    await toWorker.close();
    await atWorker.close();
    const counted = await during!;
    assertEquals(
      [counted.jobsStarted, counted.jobsFinished, counted.tokensGenerated],
      [before.jobsStarted, before.jobsFinished, before.tokensGenerated],
      "counted once while it closed",
    );
    const after = await port.stats();
    assertEquals(after, { ...before, activeJobs: 0, queuedJobs: 0 });
  } finally {
    await toWorker.close();
    await atWorker.close();
    await system.shutdown();
  }
});

Deno.test("s71: a job that failed over twice and finished is one job started and finished on the router's /metrics, none failed, with its two failovers counted by cause", async () => {
  // Worker A is lost after 2 tokens, B resumes at 2 and is lost after 4, C resumes at 4 and ends.
  const a = await crashingWorker([wireToken(0), wireToken(1)], 2);
  const bGone = Promise.withResolvers<void>();
  const b = await linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const all = [start(body.job, { resumedFrom: 2 }), wireToken(2), wireToken(3)];
      let i = 0;
      const stream = new ReadableStream<InferenceEvent>({
        pull: async (c) => {
          if (i < all.length) return c.enqueue(all[i++]);
          await bGone.promise;
          await atWorker.close();
          await new Promise(() => {});
        },
      }, { highWaterMark: 0 });
      return Promise.resolve(signed(stream, identity, body));
    });
  });
  const c = await scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const list: InferenceEvent[] = [start(body.job, k > 0 ? { resumedFrom: k } : {})];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
  const r = await router([a.toWorker, b.toWorker, c.toWorker]);
  try {
    const handle = await r.port.submit(jobFor("two-failovers"));
    let read = 0;
    for await (const _ of handle.tokens) {
      a.read(++read);
      if (read === 4) bGone.resolve();
    }
    assertEquals((await handle.done).finishReason, "length");
    assertEquals(c.submissions[0]?.resume?.length, 4, "C took the job over at 4");
    const metrics = new MetricsRegistry();
    metrics.register(inferenceCollector(new InferenceGateway({ inference: r.port })));
    const series = parsePrometheusText(await metrics.render());
    const jobs = (what: string) => valueOf(series, `veriflow_inference_jobs_${what}_total`);
    assertEquals(
      { started: jobs("started"), finished: jobs("finished"), failed: jobs("failed") },
      { started: 1, finished: 1, failed: 0 },
      "the client's one job, counted once",
    );
    assertEquals(valueOf(series, "veriflow_inference_tokens_generated_total"), TOKENS);
    assertEquals(valueOf(series, "veriflow_inference_active_jobs"), 0);
    assertEquals(valueOf(series, "veriflow_jobs_total", { state: "failed" }), 0);
    assertEquals(valueOf(series, "veriflow_inference_worker_attempts_total"), 3);
    const failovers = (cause: string) =>
      valueOf(series, "veriflow_inference_failovers_total", { cause });
    assertEquals(
      series.filter((s) => s.name === "veriflow_inference_failovers_total").length,
      5,
      "one series per cause, each there before it first happens",
    );
    assertEquals(failovers("lost"), 2, "two workers lost under the job");
    for (const cause of ["stalled", "broken", "refused_prefix", "failed"]) {
      assertEquals(failovers(cause), 0, cause);
    }
    for (const outcome of ["took_over", "kept", "no_worker"]) {
      assertEquals(valueOf(series, "veriflow_inference_hedges_total", { outcome }), 0, outcome);
    }
  } finally {
    for (const w of [a, b, c]) await w.close();
    await r.system.shutdown();
  }
});
