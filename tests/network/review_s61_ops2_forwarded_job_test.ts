/**
 * Review s61 (ops2, S1): a router's log did not say a job was forwarded, or to whom. The edge
 * logged `job 029d1273a6d4 ended (length) after 24 tokens in 72 ms`, the same line as for a job it
 * ran itself, so an operator could not tell which node did what. The network port's summary now
 * names the worker (`JobSummary.worker`), and the edge's end line says `on worker <key16>`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { params } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, MODEL, TwoTokenWorker } from "./_router_fixture.ts";

const LOAD = { running: 0, queued: 0, slots: 4, queueLimit: 0 };

Deno.test("review s61 ops2: a job the router forwarded names its worker, in the summary and in the edge's end line", async () => {
  const system = new ActorSystem({ name: "review-s61-ops2-forwarded" });
  const net = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const lines: string[] = [];
  const gateway = new InferenceGateway({
    inference: new NetworkInferencePort(net),
    log: (line) => lines.push(line),
  });
  const worker = Identity.generate();
  const key = toHex(worker.publicKey);
  let peer: Connection | undefined;
  try {
    peer = await connectWorker(net, new TwoTokenWorker(false, "", ""), LOAD, { identity: worker });
    await eventually(
      async () => (await net.ask({ type: "worker", model: MODEL })) !== undefined || undefined,
      "the worker routable",
    );
    const handle = await gateway.startText({
      model: MODEL,
      prompt: "hi",
      params: params({ maxTokens: 2 }),
    });
    for await (const _ of handle.tokens) { /* drain */ }
    const summary = await handle.done;
    assert.equal(summary.worker, key, "the summary names the worker that ran the job");
    const ended = await eventually(
      () => lines.find((line) => line.includes(" ended ")),
      "the edge's end line",
    );
    assert.match(
      ended,
      new RegExp(
        `^job [0-9a-f]{12} ended \\(length\\) after 2 tokens in \\d+ ms on worker ${
          key.slice(0, 16)
        }`,
      ),
    );
  } finally {
    await peer?.close();
    await system.shutdown();
  }
});

Deno.test("review s61 ops2: a job run here (no worker in its summary) keeps the end line as it was", async () => {
  const lines: string[] = [];
  const local = new TwoTokenWorker(false, "", "");
  const gateway = new InferenceGateway({ inference: local, log: (line) => lines.push(line) });
  const handle = await gateway.startText({
    model: MODEL,
    prompt: "hi",
    params: params({ maxTokens: 2 }),
  });
  for await (const _ of handle.tokens) { /* drain */ }
  await handle.done;
  const ended = await eventually(
    () => lines.find((line) => line.includes(" ended ")),
    "the edge's end line",
  );
  assert.match(ended, /^job [0-9a-f]{12} ended \(length\) after 2 tokens in \d+ ms$/);
});

Deno.test("review s61 ops2: a worker node logs each job a peer ran on it, naming the peer (its NetworkActor passes its log to the peer services)", async () => {
  const system = new ActorSystem({ name: "review-s61-ops2-served" });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const workerLines: string[] = [];
  try {
    const [na, nb] = await Promise.all([
      system.spawn<NetworkMessage>({
        name: "a/network",
        factory: () => new NetworkActor({ identity: router, services: {} }),
      }),
      system.spawn<NetworkMessage>({
        name: "b/network",
        factory: () =>
          new NetworkActor({
            identity: worker,
            services: { inference: new TwoTokenWorker(false, "", "") },
            log: (line) => workerLines.push(line),
          }),
      }),
    ]);
    const [da, db] = memoryDuplexPair();
    await Promise.all([
      na.ask<Connection>({ type: "attach", duplex: da, address: "mem:b", outbound: true }),
      nb.ask<Connection>({ type: "attach", duplex: db, address: "mem:a", outbound: false }),
    ]);
    await eventually(
      async () => (await na.ask({ type: "worker", model: MODEL })) !== undefined || undefined,
      "the worker routable",
    );
    const handle = await new NetworkInferencePort(na).submit({
      kind: "text",
      model: MODEL,
      prompt: "hi",
      params: params({ maxTokens: 2 }),
      nonce: "s61-served",
    });
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const served = await eventually(
      () => workerLines.find((line) => line.includes(" served for peer ")),
      "the worker's line for the job it served",
    );
    assert.match(served, new RegExp(`served for peer ${toHex(router.publicKey).slice(0, 16)}: `));
  } finally {
    await system.shutdown();
  }
});
