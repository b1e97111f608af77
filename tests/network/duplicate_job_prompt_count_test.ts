/**
 * A worker's `duplicate_job` comes with its receipt for the job (`#ranBefore`): no `start` was
 * seen, so its signed prompt count is held to the model's window as its workers list it, else to
 * the prompt's bytes, as on every path that assigns a receipt (review s79 vmoney F4: a router
 * without the model assigned a receipt signing 100,000 prompt tokens for a 2-character prompt and
 * handed it to its validator). Who pays: nobody; the receipt is not assigned, and the refusal is
 * the worker's own failure. A receipt with a count inside the bound is assigned as before.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { DuplicateJobError } from "../../actors/inference_errors.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  ReceiptRequestMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import { jobFor } from "./_hostile_worker_fixture.ts";
import { INFO } from "./_router_fixture.ts";
import { Recorder, Workers } from "./_router_doubles.ts";
import { receiptFor } from "./_scripted_worker_fixture.ts";

/** Answers `connection_to` with the open connection to the key asked. */
class WorkersByKey extends Workers {
  override receive(message: NetworkMessage): unknown {
    if (message.type !== "connection_to") return super.receive(message);
    return this.connections.find((c) => !c.isClosed && bytesEqual(c.peerKey!, message.key));
  }
}

/**
 * A router without the model sends `job` to a worker that refuses it `duplicate_job` and answers
 * the receipt request with its receipt signing `promptTokens`; `models` is what the router's
 * workers list. What the client got and the prompt counts of the receipts the validator got.
 */
async function duplicateWith(promptTokens: number, job: TextJob, models?: unknown[]) {
  const system = new ActorSystem({ name: "dup-prompt-count" });
  const router = Identity.generate();
  const worker = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: router, protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  let seen: TextJob | undefined;
  atWorker.handle(SubmitMessage, (body) => {
    seen = body.job as TextJob;
    throw new DuplicateJobError(jobId(body.job), "finished");
  });
  atWorker.handle(ReceiptRequestMessage, () => {
    const { sig: _s, worker: _w, ...unsigned } = receiptFor(seen!, worker, "xyz", 3);
    return { receipt: signReceipt({ ...unsigned, promptTokens }, worker) };
  });
  try {
    const workers = new WorkersByKey([toWorker], models);
    const network = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () => workers,
    });
    const recorder = new Recorder();
    const validator = await system.spawn<ValidatorMessage>({
      name: "r/validator",
      factory: () => recorder,
    });
    const port = new NetworkInferencePort(network, validator, router, { tokensPerEvent: 1 });
    const error = await port.submit(job).then(() => undefined, (e) => e);
    await validator.ask({ type: "stats" });
    const counts = recorder.told.filter((m) => m.type === "receipt")
      .map((m) => (m as { receipt: { promptTokens?: number } }).receipt.promptTokens);
    return { code: (error as { code?: string } | undefined)?.code, counts };
  } finally {
    await toWorker.close();
    await atWorker.close();
    await system.shutdown();
  }
}

Deno.test("a duplicate_job's receipt signing 100,000 prompt tokens for a 2-character prompt (no window listed) is not assigned, and the refusal is the worker's failure", async () => {
  const got = await duplicateWith(100_000, jobFor("dup-bytes"));
  assert.deepEqual(got.counts, [], "the inflated receipt reached the validator");
  assert.equal(got.code, "worker_failed");
});

Deno.test("a duplicate_job's receipt signing a count past the model's listed window (300 against 256) is not assigned; one inside it (255) is", async () => {
  const prompt = "x".repeat(400); // its bytes allow 401: only the listed window refuses 300
  const job = { ...jobFor("dup-window"), prompt };
  const listed = [{ ...INFO, contextLength: 256 }];
  const past = await duplicateWith(300, job, listed);
  assert.deepEqual(past.counts, [], "a count past the listed window reached the validator");
  const inside = await duplicateWith(255, { ...job, nonce: "dup-window-inside" }, listed);
  assert.deepEqual(inside.counts, [255]);
  assert.equal(inside.code, "duplicate_job");
});
