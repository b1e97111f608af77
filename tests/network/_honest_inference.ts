/**
 * A worker node's real inference path on the honest model: a `ProverActor` under the worker's
 * key and an `InferenceActor` that proves through it, behind a `LocalInferencePort`. The setup
 * the router tests share whose worker runs and proves its jobs for real
 * (`cancel_through_router_test.ts`, `retry_assigned_job_test.ts`); how it is served to the
 * router (`connectWorker`) is the test's.
 *
 * @module
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import type { Identity } from "../../protocols/identity.ts";
import { f } from "../actors/_validator_fixture.ts";
import { StaticModels } from "../server/_fixtures.ts";

/** The worker's prover (it keeps the proof data of its receipts) and its inference port. */
export interface HonestInference {
  prover: ActorRef<ProverMessage>;
  local: LocalInferencePort;
}

/** Spawn `prover` and `inference` in `system`, the worker's, signing as `identity`. */
export async function spawnHonestInference(
  system: ActorSystem,
  identity: Identity,
): Promise<HonestInference> {
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity }),
  });
  const models = new StaticModels([f.honest]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
  });
  return { prover, local: new LocalInferencePort({ inference, models }) };
}
