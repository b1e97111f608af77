/**
 * Review s62 (goodbye): a node that stopped cleanly looked, to its peers, like one that crashed.
 * Its connections only dropped, so a router logged `peer down … connection closed` and counted
 * the worker's job in flight as the worker's failure: the job failed over, and the worker was
 * asked last for a while (`busy_refusals.ts`), as one whose connection is lost under a job. A
 * stopping node now says goodbye (`peer.goodbye`, reason `stopping`) to every peer that speaks
 * it before its connections close: the peer logs `peer KEY stopped (stopping)`, drops it at once,
 * and a router fails its jobs over at once. The job it dropped is still held against it (asked
 * last for a while, as any worker whose connection is lost under a job): a goodbye costs nothing to
 * say, so a worker that said one with every job it took and dialled back in would otherwise take a
 * try of every job without ever being asked last (`busy_refusals.ts`). An honest worker that
 * stopped is gone meanwhile; only one back within the while is asked after the others.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, INFO, job, MODEL, TwoTokenWorker } from "./_router_fixture.ts";

/** A worker that takes every job and never sends a token (until it is cancelled). */
class HoldingWorker implements InferencePort {
  /** Jobs submitted to it. */
  submits = 0;
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([INFO]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  submit(j: TextJob): Promise<InferenceHandle> {
    this.submits++;
    const done = Promise.withResolvers<JobSummary>();
    const cancel = () =>
      done.resolve({
        jobId: jobId(j),
        finishReason: "cancelled",
        usage: { promptTokens: 1, completionTokens: 0 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      });
    const tokens = new ReadableStream<StreamedToken>({ cancel }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: jobId(j),
      model: INFO,
      promptTokens: 1,
      tokens,
      done: done.promise,
      cancel,
    });
  }
}

Deno.test({
  name:
    "review s62: a worker that stops cleanly says goodbye: its job fails over, the router logs it stopped and drops it, and the dropped job is still held against it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const lines: string[] = [];
    const busy = new BusyRefusals();
    const router = new ActorSystem({ name: "review-s62-goodbye-router" });
    const worker = new ActorSystem({ name: "review-s62-goodbye-worker" });
    try {
      const net = await router.spawn<NetworkMessage>({
        name: "r/network",
        factory: () =>
          new NetworkActor({
            identity: Identity.generate(),
            services: {},
            log: (line) => lines.push(line),
          }),
      });
      const port = new NetworkInferencePort(net, undefined, undefined, {}, busy);
      // Worker A: a node of its own (a NetworkActor, which says goodbye when it stops), idle.
      const aIdentity = Identity.generate();
      const holding = new HoldingWorker();
      const aNet = await worker.spawn<NetworkMessage>({
        name: "a/network",
        factory: () =>
          new NetworkActor({
            identity: aIdentity,
            services: { inference: holding },
            describe: () =>
              Promise.resolve({
                version: "1.0.0",
                roles: ["inference"],
                models: [MODEL],
                load: { running: 0, queued: 0, slots: 4, queueLimit: 4 },
              }),
          }),
      });
      const [toA, toRouter] = memoryDuplexPair();
      await Promise.all([
        net.ask({ type: "attach", duplex: toA, address: "mem-a", outbound: true }),
        aNet.ask({ type: "attach", duplex: toRouter, address: "mem-r", outbound: false }),
      ]);
      // Worker B: busier, so the job goes to A first.
      const two = new TwoTokenWorker(false, "", "");
      const bIdentity = Identity.generate();
      await connectWorker(net, two, { running: 3, queued: 0, slots: 4, queueLimit: 4 }, {
        identity: bIdentity,
      });
      const a = toHex(aIdentity.publicKey);
      await eventually(async () => {
        const peers = await net.ask<PeerInfo[]>({ type: "peers" });
        return peers.length === 2 && peers.every((p) => p.models.length > 0 && p.load) ||
          undefined;
      }, "both workers listed, with their load");

      const handle = await port.submit(job("s62-goodbye-in-flight"));
      assert.equal(holding.submits, 1, "the idle worker A took the job");
      const reading = new Response(
        handle.tokens.pipeThrough(
          new TransformStream<StreamedToken, string>({ transform: (t, c) => c.enqueue(t.text) }),
        ).pipeThrough(new TextEncoderStream()),
      ).text();
      // A stops cleanly with the job in flight.
      await worker.shutdown();
      assert.equal(await reading, "ab", "the job failed over to B and finished there");
      assert.equal(two.ran, 1);
      assert.deepEqual(busy.askedLast(), [a], "a goodbye does not excuse the job it dropped");

      const next = await port.submit(job("s62-goodbye-next"));
      await next.tokens.pipeTo(new WritableStream());
      assert.equal(two.ran, 2, "the next job went to B");

      const about = lines.filter((l) => l.includes(a.slice(0, 16)) && !l.startsWith("peer up"));
      assert.deepEqual(about, [`peer ${a.slice(0, 16)} mem-a stopped (stopping)`]);
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      assert.deepEqual(peers.map((p) => p.key), [toHex(bIdentity.publicKey)], "A is dropped");
    } finally {
      await worker.shutdown().catch(() => {});
      await router.shutdown();
    }
  },
});
