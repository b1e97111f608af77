/**
 * The node's inference path on one model in a test's actor system: a `ProverActor` signing as the
 * worker and an `InferenceActor` that proves every job through it (`InferenceActor` →
 * `ProverActor`, as `node/node.ts` wires them). For the receipt tests that run a job on it
 * (`prompt_tokens_receipt_test.ts`, `cancel_receipt_test.ts`).
 *
 * @module
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import type { Identity } from "../../protocols/identity.ts";
import { StaticModels } from "../server/_fixtures.ts";

/** The worker's prover (it keeps its receipts' proof data) and its inference actor. */
export interface ProvingInference {
  prover: ActorRef<ProverMessage>;
  inference: ActorRef<InferenceMessage>;
}

/** Spawn the prover and the inference actor in `system`, serving `model`, signing as `worker`. */
export async function spawnProvingInference(
  system: ActorSystem,
  model: ConstructorParameters<typeof StaticModels>[0][number],
  worker: Identity,
): Promise<ProvingInference> {
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity: worker }),
  });
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([model]), prover: proverHook(prover) }),
  });
  return { prover, inference };
}
