/**
 * What a worker's prover knows of a job after a restart (`job_trace`, review s79 crash F2, F4):
 * the receipt it signed, from its proof record; `unknown` only when it is sure it has no trace of
 * the job; `unsure` for a job still being proven, a record without a receipt (from before they
 * were kept), or a store it could not read whole. A worker that crashed mid-job with a trace must
 * never say `unknown`: its requester would stop asking for a receipt it can still hand over.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { type ProveHandle, ProverActor, type ProverMessage } from "../../actors/prover_actor.ts";
import type { JobTrace } from "../../inference/serve_inference.ts";
import { ProofStore } from "../../proof/proof_store.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";
import type { TokenChunk } from "../../inference/text_model.ts";

const identity = Identity.generate();
const clock = { t: 1_700_000_000_000 };
const RETENTION_MS = 5 * 60_000;

/** Run `fn` with a prover on `dir` (one incarnation of the worker), then stop it. */
async function withProver(
  dir: string,
  fn: (prover: ReturnType<ActorSystem["lookup"]> & object) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "prover-job-trace" });
  try {
    const prover = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () =>
        new ProverActor({
          identity,
          dir,
          now: () => clock.t,
          proofRetentionMs: RETENTION_MS,
          sweepEveryMs: 0,
        }),
    });
    await fn(prover);
  } finally {
    await system.shutdown();
  }
}

const trace = (prover: { ask: <T>(m: ProverMessage) => Promise<T> }, id: string) =>
  prover.ask<JobTrace>({ type: "job_trace", jobId: id });

Deno.test("prover: after a restart a job it signed is traced with its receipt and requester, one it never saw is unknown, one being proven is not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const signed = { ...scriptedJob("trace-signed", 8), requester: "cd".repeat(32) };
    let receipt = "";
    await withProver(dir, async (prover) => {
      const handle = await prover.ask<ProveHandle>({
        type: "prove",
        job: signed,
        jobId: jobId(signed),
        chunks: scriptedChunks(5),
      });
      receipt = receiptId(await handle.receipt);
    });
    await withProver(dir, async (prover) => {
      const found = await trace(prover, jobId(signed));
      assert.equal(found.kind, "signed");
      if (found.kind !== "signed") return;
      assert.equal(receiptId(found.receipt), receipt);
      assert.equal(found.requester, signed.requester);
      assert.equal(found.provedAt, clock.t);
      assert.deepEqual(await trace(prover, "ab".repeat(32)), { kind: "unknown" });
      // A job whose tokens still flow: no record yet, but it is not unknown here.
      const running = scriptedJob("trace-running", 8);
      await prover.ask<ProveHandle>({
        type: "prove",
        job: running,
        jobId: jobId(running),
        chunks: new ReadableStream<TokenChunk>(), // never ends
      });
      assert.deepEqual(await trace(prover, jobId(running)), { kind: "unsure" });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prover: a record without its receipt (written before they were kept), or a record it cannot read, is never taken for no trace", async () => {
  const [signedDir, oldDir] = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  try {
    const job = scriptedJob("trace-old", 8);
    let id = "";
    await withProver(signedDir, async (prover) => {
      const handle = await prover.ask<ProveHandle>({
        type: "prove",
        job,
        jobId: jobId(job),
        chunks: scriptedChunks(5),
      });
      id = receiptId(await handle.receipt);
    });
    // The same record as an older worker wrote it: job and proof data, no receipt.
    const store = new ProofStore(signedDir, { retentionMs: RETENTION_MS, now: () => clock.t });
    const record = (await store.get(id))!;
    const old = new ProofStore(oldDir, { retentionMs: RETENTION_MS, now: () => clock.t });
    await old.put({ receiptId: id, provedAt: record.provedAt, job, proof: record.proof });
    await withProver(oldDir, async (prover) => {
      assert.deepEqual(await trace(prover, jobId(job)), { kind: "unsure" });
      assert.deepEqual(await trace(prover, "ab".repeat(32)), { kind: "unknown" });
    });
    // A record that does not decode: the prover cannot say which job it was for.
    const bucket = [...Deno.readDirSync(oldDir)].find((e) => e.isDirectory)!.name;
    await Deno.writeFile(`${oldDir}/${bucket}/${"ef".repeat(32)}.cbor`, new Uint8Array([0xff]));
    await withProver(oldDir, async (prover) => {
      assert.deepEqual(await trace(prover, "ab".repeat(32)), { kind: "unsure" });
    });
  } finally {
    await Deno.remove(signedDir, { recursive: true });
    await Deno.remove(oldDir, { recursive: true });
  }
});
