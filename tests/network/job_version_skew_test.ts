/**
 * Mixed versions and a job's fields (review s81 wire, F2): a worker refuses a job with a field it
 * does not know (strict `textJobSchema`), naming the field, before running anything. Before, it
 * dropped the field, ran another job than the one asked and signed a receipt for that job's id,
 * which the requester refused (`job_mismatch`) and then kept the honest worker off the model. A
 * forwarding node takes such a refusal for a version skew (`job_version_mismatch`): it asks
 * another worker, and the one that refused is neither kept off the model nor charged a try.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { ActorSystem } from "../../actors/actor_system.ts";
import { JobVersionMismatchError } from "../../inference/errors.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { isCapacityRefusal, isWorkerRefusal } from "../../network/_failure_codes.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { defineProtocol, type Protocol } from "../../protocols/connection_protocols.ts";
import {
  INFERENCE_PROTOCOL,
  INFERENCE_PROTOCOL_MESSAGES,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { defineMessage, unknownFieldOf } from "../../protocols/message_registry.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";
import { job, script, served } from "./_scripted_workers.ts";

/**
 * Worker and requester over an in-memory connection; the worker side returned unserved, speaking
 * `atWorker` (default this version's inference protocol).
 */
async function link(atWorkerProtocol: Protocol = INFERENCE_PROTOCOL) {
  const [a, b] = memoryDuplexPair();
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
    Connection.open(b, { identity: Identity.generate(), protocols: [atWorkerProtocol] }),
  ]);
  return { toWorker, atWorker };
}

/**
 * A worker of an older version: its `inference.submit` knows no `precision` (added later), and
 * its job schema is strict as this version's is. What it runs is counted, never started.
 */
async function olderWorker() {
  const ran = { count: 0 };
  const olderJob = z.object({
    kind: z.literal("text"),
    model: z.string(),
    prompt: z.string(),
    params: z.record(z.string(), z.unknown()),
    nonce: z.string(),
  }).strict();
  const olderSubmit = defineMessage(
    SubmitMessage.type,
    z.object({ job: olderJob }).passthrough(),
    { chunk: SubmitMessage.chunk },
  );
  const older = await link(
    defineProtocol("inference", 1, [olderSubmit, ...INFERENCE_PROTOCOL_MESSAGES.slice(1)]),
  );
  older.atWorker.handle(olderSubmit as unknown as typeof SubmitMessage, () => {
    ran.count++;
    throw new Error("an older worker ran a job with a field it does not know");
  });
  return { ...older, ran };
}

Deno.test("a worker refuses a job with a field it does not know, naming the field, and runs nothing (it dropped the field and ran another job before)", async () => {
  const { toWorker, atWorker } = await link();
  const port = new StallingPort(served, script);
  serveInference(atWorker, port);
  try {
    // A newer requester's job: one more sampling parameter, which this version does not know.
    const newer = { ...job("newer"), params: { ...job("newer").params, minP: 0.05 } } as TextJob;
    const events = toWorker.openStream(SubmitMessage, { job: newer } as SubmitBody);
    const refused = await events.getReader().read().then(() => undefined, (e) => e);
    assert.ok(refused instanceof RemoteError, `refused: ${refused}`);
    assert.equal(refused.code, "invalid_body");
    assert.match(refused.message, /job\.params\.minP: unknown field \(from a later version\?\)/);
    assert.equal(unknownFieldOf(refused.message), "job.params.minP");
    assert.equal(port.submits, 0, "the worker ran a job other than the one asked");
    // A field beside the job's params, in the job itself: the same.
    const extra = { ...job("extra"), priority: 1 } as TextJob;
    const second = toWorker.openStream(SubmitMessage, { job: extra } as SubmitBody);
    const again = await second.getReader().read().then(() => undefined, (e) => e);
    assert.equal(unknownFieldOf((again as Error).message), "job.priority");
    assert.equal(port.submits, 0);
  } finally {
    await toWorker.close();
    await atWorker.close();
  }
});

Deno.test("a forwarding node asks another worker when one refuses a field of the job as unknown: the job runs, the older worker is not kept off the model, spends no try and is not paid", async () => {
  const system = new ActorSystem({ name: "job-version-skew" });
  const older = await olderWorker();
  const current = await link();
  const port = new StallingPort(served, script);
  serveInference(current.atWorker, port);
  const workers = new Workers([older.toWorker, current.toWorker], [served]);
  const router = await spawnRouter(system, workers);
  try {
    // `precision` is this version's field, unknown to the older worker, which is asked first.
    const asked: TextJob = { ...job("skew"), precision: "fp32" };
    const handle = await router.port.submit(asked);
    const got: number[] = [];
    for await (const token of handle.tokens) got.push(token.index);
    assert.deepEqual(got, script.map((s) => s.index));
    assert.equal((await handle.done).finishReason, "length");
    assert.deepEqual([older.ran.count, port.submits], [0, 1], "the older worker ran nothing");
    await router.settled();
    // Not kept off the model (before: taken for a worker that called a good job bad, it was).
    assert.equal(workers.avoided.size, 0, "the older worker was kept off the model");
    const olderKey = toHex(older.toWorker.peerKey!);
    // Nothing about the older worker reached the ledger's side: no receipt, no claim, no pay.
    assert.ok(
      !JSON.stringify(router.recorder.told, (_k, v) => v instanceof Uint8Array ? toHex(v) : v)
        .includes(olderKey),
      "the ledger was told about the worker that ran nothing",
    );
  } finally {
    for (const l of [older, current]) {
      await l.toWorker.close();
      await l.atWorker.close();
    }
    await system.shutdown();
  }
});

Deno.test("when every worker is too old for a field of the job the client is told which field (job_version_mismatch), and no worker is kept off the model", async () => {
  const system = new ActorSystem({ name: "job-version-skew-all" });
  const older = await olderWorker();
  const workers = new Workers([older.toWorker], [served]);
  const router = await spawnRouter(system, workers);
  try {
    const asked: TextJob = { ...job("all-old"), precision: "fp32" };
    const error = await router.port.submit(asked).then(() => undefined, (e) => e);
    assert.ok(error instanceof JobVersionMismatchError, String(error));
    assert.equal(error.code, "job_version_mismatch");
    assert.equal(error.field, "job.precision");
    // Another worker's, not the job's, and no fault: no try spent, not kept off the model.
    assert.ok(isWorkerRefusal(error) && isCapacityRefusal(error));
    await router.settled();
    assert.equal(workers.avoided.size, 0);
    assert.equal(older.ran.count, 0);
  } finally {
    await older.toWorker.close();
    await older.atWorker.close();
    await system.shutdown();
  }
});
