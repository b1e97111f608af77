/**
 * The prover wired into the InferenceActor through its `prover` hook: the requester's output
 * matches the receipt, and the proof data the ProverActor kept validates.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type SubmitReply,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { loadFixture } from "./_models.ts";

Deno.test("inference actor + prover hook: streamed output matches the receipt and validates", async () => {
  const f = await loadFixture();
  const worker = Identity.generate();
  const system = new ActorSystem({ name: "integration" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "node/prover",
      factory: () => new ProverActor({ identity: worker }),
    });
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () =>
        new InferenceActor({
          models: {
            get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
          },
          prover: proverHook(prover),
        }),
    });
    const job: TextJob = {
      kind: "text",
      model: f.honest.info.cid,
      prompt: "Streaming with proofs",
      params: { maxTokens: 24, temperature: 0.9, topK: 0, topP: 1, seed: 5, stop: [] },
      nonce: "int-1",
    };
    const reply = await inference.ask<SubmitReply>({ type: "submit", job });
    assert.ok(reply.accepted);
    const handle = reply.handle as TextJobHandle;
    let output = "";
    for await (const chunk of handle.tokens) output += chunk.text;
    const summary = await handle.done;
    const receipt = summary.receipt as Receipt;
    assert.ok(receipt, `no receipt: ${JSON.stringify(summary.error)}`);
    assert.ok(verifyReceipt(receipt, { job, output, worker: worker.publicKey }).ok);
    const served = await prover.ask<ServedProof>({
      type: "get_proof",
      receiptId: receiptId(receipt),
    });
    const result = await validateReceipt(
      { job, receipt, proof: served.proof, proofSig: served.sig, output },
      f.honestThreads,
      Identity.generate(),
    );
    assert.equal(result.verdict.outcome, "valid", result.verdict.reason);
  } finally {
    await system.shutdown();
  }
});
