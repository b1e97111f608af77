/**
 * The forwarding port of a node without a model: the worker's receipt is checked (signer, job,
 * relayed text) before the client gets it, and handed to the node's own validator.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceMessage,
} from "../../actors/inference_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/remote_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadTinyModel, params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";

/** Stands in for the NetworkActor: one worker connection, its models. */
class OneWorker implements Actor<NetworkMessage> {
  constructor(readonly connection: Connection, readonly models: unknown[]) {}
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker") return this.connection;
    if (message.type === "worker_models") return this.models;
    return undefined;
  }
}

/** Stands in for the ValidatorActor: records what it is told. */
class Recorder implements Actor<ValidatorMessage> {
  constructor(readonly told: ValidatorMessage[]) {}
  receive(message: ValidatorMessage): undefined {
    if (message.type !== "stats") this.told.push(message);
    return undefined;
  }
}

/** A worker whose prover signs with `signer` (its own key, or a liar's), behind a relay port. */
async function relayTo(
  signer: "worker" | "someone else",
  model: GenerativeModel = new ScriptedModel(),
) {
  const worker = Identity.generate();
  const key = signer === "worker" ? worker : Identity.generate();
  const models = new StaticModels([model]);
  const system = new ActorSystem({ name: "relay-test" });
  const prover = async (job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) =>
    (await proveJob(job, chunks, key)).receipt;
  const inference = await system.spawn<InferenceMessage>({
    name: "worker/inference",
    factory: () => new InferenceActor({ models, prover }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  serveInference(atWorker, new LocalInferencePort({ inference, models }));
  const network = await system.spawn<NetworkMessage>({
    name: "relay/network",
    factory: () => new OneWorker(toWorker, [model.info]),
  });
  const told: ValidatorMessage[] = [];
  const validator = await system.spawn<ValidatorMessage>({
    name: "relay/validator",
    factory: () => new Recorder(told),
  });
  const port = new NetworkInferencePort(network, validator);
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "x",
    params: params({ maxTokens: 4 }),
    nonce: "n",
  };
  const close = async () => {
    await toWorker.close();
    await atWorker.close();
    await system.shutdown();
  };
  // Mailboxes are FIFO: once an ask is answered, every earlier tell has been handled.
  const settled = () => validator.ask({ type: "stats" });
  return { port, job, told, worker, settled, close };
}

Deno.test("a relayed job's receipt signed by its worker reaches the client and the relay's validator", async () => {
  const t = await relayTo("worker");
  try {
    const handle = await t.port.submit(t.job);
    for await (const _ of handle.tokens) { /* relay every token */ }
    const summary = await handle.done;
    assert(summary.receipt !== undefined, JSON.stringify(summary.error));
    assertEquals(summary.error, undefined);
    await t.settled();
    assertEquals(t.told.length, 1);
    const told = t.told[0] as Extract<ValidatorMessage, { type: "receipt" }>;
    assertEquals(told.origin, toHex(t.worker.publicKey));
    assertEquals(told.announce, true);
    assertEquals(told.job, t.job);
  } finally {
    await t.close();
  }
});

Deno.test("a relayed job's receipt signed by another key is withheld from the client and from the validator", async () => {
  const t = await relayTo("someone else");
  try {
    const handle = await t.port.submit(t.job);
    for await (const _ of handle.tokens) { /* relay every token */ }
    const summary = await handle.done;
    assertEquals(summary.receipt, undefined);
    assertEquals(summary.error?.code, "receipt_rejected");
    assertEquals(summary.finishReason, "length");
    await t.settled();
    assertEquals(t.told.length, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a relayed job's top logprobs reach the client through the forwarding port, and its receipt still checks out", async () => {
  const t = await relayTo("worker", await loadTinyModel());
  try {
    const handle = await t.port.submit(t.job, { topLogprobs: 2 });
    const tops = [];
    for await (const token of handle.tokens) {
      assertEquals(token.topLogprobs?.[0].tokenId, token.tokenId);
      tops.push(token.topLogprobs?.length);
    }
    assertEquals(tops, [2, 2, 2, 2]);
    const summary = await handle.done;
    assert(summary.receipt !== undefined, JSON.stringify(summary.error));
    await t.settled();
    assertEquals(t.told.length, 1);
  } finally {
    await t.close();
  }
});
