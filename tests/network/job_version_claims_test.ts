/**
 * A worker's claim that it is too old for a field of the job (review s81 vwire2, F3). The worker
 * writes its refusal's words; a requester takes one for a version skew (`job_version_mismatch`:
 * the next worker is asked, the refusing one spends no try and is not kept off the model) only
 * when it is exactly an unknown-field refusal naming, under `job.`, a key the job as sent has and
 * could do without (an optional field, one a later version may have added). Before, any text
 * ending with the reason was believed: a field every version reads (`job.prompt`), free text,
 * newlines and terminal escapes reached the error's `field` and the client's message.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InvalidGenerationParamsError, JobVersionMismatchError } from "../../inference/errors.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, SubmitMessage } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { UNKNOWN_FIELD_REASON } from "../../protocols/message_registry.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";
import { job, served } from "./_scripted_workers.ts";

const REASON = `: ${UNKNOWN_FIELD_REASON}`;
const AS_REFUSED = 'invalid body for "inference.submit": ';

/** Claims no requester may take for a version skew, and why not. */
const HOSTILE: [string, string][] = [
  ["a field every version reads", `${AS_REFUSED}job.prompt${REASON}`],
  ["a field every version reads, params", `${AS_REFUSED}job.params${REASON}`],
  ["a field the job does not have", `${AS_REFUSED}job.params.minP${REASON}`],
  ["an optional field the job does not have", `${AS_REFUSED}job.input${REASON}`],
  ["a path not under job", `${AS_REFUSED}precision${REASON}`],
  ["an inherited key", `${AS_REFUSED}job.__proto__${REASON}`],
  ["free text", `your job is bad, go away${REASON}`],
  ["a fake log line", `x: job.a\n2026-12-07 ERROR ledger corrupt \u001b[31m${REASON}`],
  ["a key with ': ' in it", `${AS_REFUSED}job.a: b${REASON}`],
  ["words after the reason", `${AS_REFUSED}job.precision${REASON} (really)`],
];

/** A worker that refuses every job `invalid_body` with the words `say()` gives; it runs none. */
async function claimingWorker(say: () => string) {
  const [a, b] = memoryDuplexPair();
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
    Connection.open(b, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
  ]);
  atWorker.handle(SubmitMessage, () => {
    throw new VeriflowError("invalid_body", say());
  });
  return { toWorker, atWorker };
}

/** This version's job with an optional field set, as a newer requester's job has one more. */
const asked = (nonce: string): TextJob => ({ ...job(nonce), precision: "fp32" });

Deno.test("a worker's claim that it cannot read a field is believed only for an optional field the job has, named exactly; any other is a plain refusal naming no field", async () => {
  let words = "";
  const { toWorker, atWorker } = await claimingWorker(() => words);
  const port = new RemoteInferencePort(toWorker);
  try {
    for (const [what, message] of HOSTILE) {
      words = message;
      const error = await port.submit(asked(what)).then(() => undefined, (e) => e);
      assert.ok(error instanceof InvalidGenerationParamsError, `${what}: ${error}`);
      assert.equal(error.code, "invalid_generation_params", what);
    }
    // The one claim that holds: `precision`, optional, set in this job.
    words = `${AS_REFUSED}job.precision${REASON}`;
    const skew = await port.submit(asked("true")).then(() => undefined, (e) => e);
    assert.ok(skew instanceof JobVersionMismatchError, String(skew));
    assert.equal(skew.field, "job.precision");
  } finally {
    await toWorker.close();
    await atWorker.close();
  }
});

Deno.test("a forwarding node's only worker claiming it cannot read the job's prompt: the client is told the worker refused the job (invalid_generation_params), not job_version_mismatch; nothing runs, nothing is recorded", async () => {
  const system = new ActorSystem({ name: "job-version-claims" });
  const liar = await claimingWorker(() => `${AS_REFUSED}job.prompt${REASON}`);
  const workers = new Workers([liar.toWorker], [served]);
  const router = await spawnRouter(system, workers);
  try {
    const error = await router.port.submit(asked("liar")).then(() => undefined, (e) => e);
    assert.ok(!(error instanceof JobVersionMismatchError), String(error));
    assert.equal((error as VeriflowError).code, "invalid_generation_params", String(error));
    await router.settled();
    // No receipt, claim or lock about the worker: it ran nothing, so nobody is paid or slashed.
    const key = toHex(liar.toWorker.peerKey!);
    const told = JSON.stringify(
      [router.recorder.told, workers.told],
      (_k, v) => v instanceof Uint8Array ? toHex(v) : v,
    );
    assert.ok(!told.includes(key), `told about the worker: ${told}`);
    assert.equal(router.recorder.told.length, 0);
  } finally {
    await liar.toWorker.close();
    await liar.atWorker.close();
    await system.shutdown();
  }
});
