/**
 * A worker's answer to `inference.get_receipt` for a job it admitted and queued behind busy
 * slots, asked on another connection of the job's requester (review s79 vcrash F3): "not yet",
 * never `unknown_job`, which is only for a job the worker will never have a receipt of. Before,
 * the queued job was not yet the prover's, its trace said unknown, and the worker then ran and
 * signed the job its requester had been told to forget.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { servePeer } from "../../network/peer_services.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  ReceiptRequestMessage,
  SubmitMessage,
  UNKNOWN_JOB,
} from "../../protocols/inference_messages.ts";
import { jobId } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { f } from "../actors/_validator_fixture.ts";
import { clientJob } from "./_proving_worker.ts";
import { eventually } from "../_helpers/wait.ts";

/** The batch seats `f.honest` reports once loaded: this many local jobs fill the model. */
const SEATS = 8;
/** Tokens of each local job: more than one read, so each stays running, stalled on its reader. */
const BUSY_TOKENS = 400;

Deno.test("a job admitted and queued behind busy slots is not unknown_job on its requester's other connection: it is not yet, then its receipt once it ran", async () => {
  const proofDir = await Deno.makeTempDir();
  const [worker, router] = [Identity.generate(), Identity.generate()];
  const system = new ActorSystem({ name: "queued-job-receipt" });
  const links: Connection[] = [];
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity: worker, dir: proofDir, sweepEveryMs: 0 }),
    });
    const models = new StaticModels([f.honest]);
    const inference = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models, prover: proverHook(prover), concurrency: 1 }),
    });
    const port = new LocalInferencePort({ inference, models });
    const connect = async () => {
      const [a, b] = memoryDuplexPair();
      const protocols = [INFERENCE_PROTOCOL];
      const [to, at] = await Promise.all([
        Connection.open(a, { identity: router, protocols }),
        Connection.open(b, { identity: worker, protocols }),
      ]);
      servePeer(at, router.publicKey, { system, inference: port, prover: "prover" });
      links.push(to, at);
      return to;
    };
    const busy = await Promise.all(
      Array.from({ length: SEATS }, (_, n) => port.submit(clientJob(`busy-${n}`, BUSY_TOKENS))),
    );
    const readers = busy.map((handle) => handle.tokens.getReader());
    for (const reader of readers) await reader.read(); // running, stalled on its unread tokens
    const old = await connect();
    const job = { ...clientJob("queued", 6), requester: toHex(router.publicKey) };
    const events: unknown[] = [];
    const collected = (async () => {
      for await (const event of old.openStream(SubmitMessage, { job })) events.push(event);
    })();
    collected.catch(() => {}); // awaited below; a failed assertion closes the connection first
    // deno-lint-ignore no-explicit-any
    const stats = async () => await inference.ask<any>({ type: "stats" });
    await eventually(async () => (await stats()).queuedJobs === 1, "the job queued");
    const fresh = await connect();
    const queued = await fresh.request(ReceiptRequestMessage, { jobId: jobId(job) });
    assert.deepEqual(queued, { receipt: null }, "a queued job is not yet, not unknown");
    assert.notEqual((queued as { reason?: string }).reason, UNKNOWN_JOB);
    // The slots free: the queued job runs and is signed, and the other connection gets it.
    for (const [i, reader] of readers.entries()) {
      while (!(await reader.read()).done) { /* drain */ }
      await busy[i].done;
    }
    await collected;
    assert.equal((events.at(-1) as { kind?: string }).kind, "end", "the queued job ran to its end");
    const after = await fresh.request(ReceiptRequestMessage, { jobId: jobId(job) });
    assert.equal(after.receipt?.jobId, jobId(job), "the receipt of the job that ran");
    // A job never admitted here stays unknown_job.
    const never = { ...clientJob("never", 6), requester: toHex(router.publicKey) };
    const unknown = await fresh.request(ReceiptRequestMessage, { jobId: jobId(never) });
    assert.equal((unknown as { reason?: string }).reason, UNKNOWN_JOB);
  } finally {
    for (const link of links) await link.close().catch(() => {});
    await system.shutdown().catch(() => {});
    await Deno.remove(proofDir, { recursive: true });
  }
});
