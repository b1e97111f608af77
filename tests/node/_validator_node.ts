/**
 * A node as `node/node.ts` wires it with the validator role alone, for the tests of what its
 * validator does at receipt intake (`node_validator_test.ts`,
 * `../actors/prompt_tokens_node_intake_test.ts`): the fixture's honest model registered (no
 * session loaded), the coin drawing nothing (p = 0: what those tests pin is the intake, not a
 * sampled challenge), a worker staked, and the job and assignment a requester would send.
 *
 * @module
 */
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode, type VeriflowNode } from "../../node/node.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { Fixture } from "../proof/_models.ts";

/** The node, its registry, its validator, and the two parties of a job. */
export interface ValidatorNode {
  node: VeriflowNode;
  models: ModelRegistry;
  validator: ActorRef<ValidatorMessage>;
  worker: Identity;
  requester: Identity;
  close(): Promise<void>;
}

/** Start a validator-only node holding `f`'s honest model, its worker staked `stake`. */
export async function startValidatorNode(f: Fixture, stake: number): Promise<ValidatorNode> {
  const dataDir = await Deno.makeTempDir();
  const models = new ModelRegistry();
  await models.register(`${f.dir}/honest`);
  const config = parseNodeConfig({
    dataDir,
    http: { port: 0 },
    network: { listen: { port: 0 } },
    heartbeatMs: 0,
    roles: { inference: false, prover: false, validator: true },
    // No coin: what is asserted is the intake, not a sampled challenge.
    validator: { challengeProbability: 0 },
  });
  const node = await startNode(config, { models, log: () => {} });
  const close = async () => {
    await node.shutdown();
    await node.finished;
    await models.close();
    await Deno.remove(dataDir, { recursive: true });
  };
  const worker = Identity.generate();
  const requester = Identity.generate();
  try {
    const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: stake });
    return { node, models, validator, worker, requester, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A short sampled text job on `model` that `v`'s requester asks for (a fresh nonce). */
export function settleJob(v: ValidatorNode, model: string): TextJob {
  return {
    kind: "text",
    model,
    prompt: "Settle this",
    params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
    nonce: crypto.randomUUID(),
    requester: toHex(v.requester.publicKey),
  };
}

/** `v`'s validator told of `receipt` for `job`, with the requester's assignment to the worker. */
export function tellReceipt(
  v: ValidatorNode,
  receipt: Receipt,
  job: TextJob,
): Promise<ReceiptHandled> {
  return v.validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job,
    assignment: signAssignment({ job, worker: v.worker.publicKey, issuedAt: 0 }, v.requester),
    origin: toHex(v.requester.publicKey),
  });
}
