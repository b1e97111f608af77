import assert from "node:assert/strict";
import { join } from "node:path";
import { LostEndFiles, type StoredLostEnd } from "../../network/_lost_end_files.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { toHex } from "../../protocols/hash.ts";

/** A lost end of a job `requester` forwarded to a fresh worker, expiring at `expiresAt`. */
function lostEnd(nonce: string, expiresAt: number): StoredLostEnd {
  const requester = Identity.generate();
  const worker = Identity.generate().publicKey;
  const job: TextJob = {
    kind: "text",
    model: "m",
    prompt: "hi",
    params: { maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [] },
    nonce,
    requester: toHex(requester.publicKey),
  };
  return {
    job,
    worker,
    relayed: { output: "ab", tokens: 2, resumedAt: 0, lastToken: "length" },
    summary: {
      jobId: jobId(job),
      finishReason: "error",
      usage: { promptTokens: 1, completionTokens: 2 },
      timings: { queueMs: NaN, ttftMs: 1, totalMs: 2, tokensPerS: NaN },
      error: { code: "connection_closed", message: "connection closed" },
    },
    assignment: signAssignment({ job, worker, issuedAt: 1 }, requester),
    expiresAt,
  };
}

Deno.test("LostEndFiles reads back the lost ends it kept, soonest to expire first, and removes those expired, damaged or removed", async () => {
  const dir = join(await Deno.makeTempDir(), "lost-ends");
  try {
    const files = new LostEndFiles(dir);
    const [later, sooner, expired, gone] = [
      lostEnd("later", 3_000),
      lostEnd("sooner", 2_000),
      lostEnd("expired", 1_000),
      lostEnd("gone", 4_000),
    ];
    for (const lost of [later, sooner, expired, gone]) await files.save(lost);
    await files.remove(jobId(gone.job));
    // A damaged record: not a lost end, removed.
    await Deno.writeFile(join(dir, `${"ab".repeat(32)}.cbor`), new Uint8Array([0xff, 0x00]));
    const read = await new LostEndFiles(dir).all(1_500);
    assert.deepEqual(read.map((l) => l.job.nonce), ["sooner", "later"]);
    assert.deepEqual(read[0].relayed, sooner.relayed);
    assert.deepEqual(read[0].worker, sooner.worker);
    assert.ok(Number.isNaN(read[0].summary.timings.queueMs));
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(names, [jobId(later.job), jobId(sooner.job)].map((id) => `${id}.cbor`).sort());
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test("LostEndFiles refuses a record whose assignment is not for its job and worker", async () => {
  const dir = join(await Deno.makeTempDir(), "lost-ends");
  try {
    const files = new LostEndFiles(dir);
    const lost = lostEnd("forged", 9_000);
    await files.save({ ...lost, worker: Identity.generate().publicKey });
    assert.deepEqual(await files.all(0), []);
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});
