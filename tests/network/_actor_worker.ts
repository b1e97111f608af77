/**
 * Test fixture: a real worker node's inference path — an `InferenceActor` with a `ProverActor` on
 * the tiny GPT model, behind a `LocalInferencePort` — served over an in-memory connection as a
 * node serves its peers (`serveInference`, keeping the receipts of streams cancelled under it in
 * `UnsentReceipts`). `connect` opens another connection to the same node (same key, same actors):
 * the worker back after its connection dropped. For the tests of what a worker refuses or signs
 * after a cancel (`retry_after_drop_test.ts`).
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference, UnsentReceipts } from "../../inference/serve_inference.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { Connection } from "../../protocols/connection.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { loadTinyModel, StaticModels } from "../server/_fixtures.ts";

/** One connection requester → worker: `to` the requester's end, `at` the worker's. */
export interface WorkerLink {
  to: Connection;
  at: Connection;
}

/** A running worker node (see the module comment). */
export interface ActorWorker {
  model: TextModel;
  identity: Identity;
  inference: ActorRef<InferenceMessage>;
  unsent: UnsentReceipts;
  /** The first connection, open from the start. */
  link: WorkerLink;
  /** Another connection from the same requester key to the same node. */
  connect: () => Promise<WorkerLink>;
  /** Close every connection opened and stop the node. */
  close: () => Promise<void>;
}

/** Start a worker node named `name`, with a first connection from a requester of its own key. */
export async function actorWorker(name: string): Promise<ActorWorker> {
  const model = await loadTinyModel();
  const identity = Identity.generate();
  const requester = Identity.generate();
  const system = new ActorSystem({ name });
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity }),
  });
  const models = new StaticModels([model]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
  });
  const port = new LocalInferencePort({ inference, models });
  const unsent = new UnsentReceipts();
  const links: WorkerLink[] = [];
  const connect = async (): Promise<WorkerLink> => {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [to, at] = await Promise.all([
      Connection.open(a, { identity: requester, protocols }),
      Connection.open(b, { identity, protocols }),
    ]);
    serveInference(at, port, { unsent });
    const link = { to, at };
    links.push(link);
    return link;
  };
  const link = await connect();
  return {
    model,
    identity,
    inference,
    unsent,
    link,
    connect,
    close: async () => {
      for (const { to, at } of links) {
        await to.close().catch(() => {});
        await at.close().catch(() => {});
      }
      await system.shutdown();
    },
  };
}
