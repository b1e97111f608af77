/**
 * A worker's refusal words on their way to a client (stop 81's note: "a plain worker refusal's
 * text still reaches the client in `invalid_generation_params`"). The worker writes them: a
 * refusal of a job's body (`invalid_body`) and one of its parameters (`invalid_generation_params`)
 * keep their message up to the client's 400, so before, up to 1,024 characters of anything the
 * worker chose (its paths, terminal escapes, fake log lines) were the client's error message.
 * Now the client is told the field a refusal names, and the worker's words bounded
 * (`MAX_REFUSAL_CHARS`) without control characters; an honest refusal reads as it did.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ContextLengthError, InvalidGenerationParamsError } from "../../inference/errors.ts";
import { MAX_REFUSAL_CHARS } from "../../inference/remote_errors.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, SubmitMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { httpStatusOf, openAiErrorBody } from "../../server/http_errors.ts";
import { spawnRouter, Workers } from "../network/_router_doubles.ts";
import { job, served } from "../network/_scripted_workers.ts";

/** A path on the worker's disk, a fake log line, an OSC 52 clipboard write, then 10 KB. */
const HOSTILE = "open /home/worker/.veriflow/identity.key: denied\n2026-12-07 ERROR ledger " +
  "corrupt\r\n\x1b]52;c;cm0gLXJmIH4=\x07\u202eevil\u2028" + "x".repeat(10_000);

/** Control characters, line separators, bidirectional and zero-width marks. */
const UNSHOWN =
  // deno-lint-ignore no-control-regex -- finding control characters is this regex's purpose
  /[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u;

/** A worker that refuses every job with `code` and the words `say()` gives; it runs none. */
async function refusingWorker(code: string, say: () => string) {
  const [a, b] = memoryDuplexPair();
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
    Connection.open(b, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
  ]);
  atWorker.handle(SubmitMessage, () => {
    throw new VeriflowError(code, say());
  });
  return { toWorker, atWorker };
}

/** What the HTTP client is told of `error`: its status and the OpenAI body's message. */
function toldClient(error: unknown): { status: number; message: string; code: string } {
  const { message, code } = openAiErrorBody(error).error;
  return { status: httpStatusOf(error), message, code };
}

/** Bounded (the prefix, a field and the worker's capped words), with no control character. */
function assertShown(message: string, what: string) {
  assert.doesNotMatch(message, UNSHOWN, `${what}: ${JSON.stringify(message)}`);
  assert.ok(message.length <= MAX_REFUSAL_CHARS + 200, `${what}: ${message.length} characters`);
}

Deno.test("a worker's invalid_body refusal reaches the client bounded and without control characters, naming the field it refused; an honest one reads as before", async () => {
  let words = "";
  const { toWorker, atWorker } = await refusingWorker("invalid_body", () => words);
  const port = new RemoteInferencePort(toWorker);
  const refused = async (nonce: string) => {
    const error = await port.submit(job(nonce)).then(() => undefined, (e) => e);
    assert.ok(error instanceof InvalidGenerationParamsError, `${nonce}: ${error}`);
    const told = toldClient(error);
    assert.equal(told.status, 400, nonce);
    assert.equal(told.code, "invalid_generation_params", nonce);
    assert.equal(told.message, error.message, nonce);
    return told.message;
  };
  try {
    // Free text: 10 KB with a path, a fake log line and terminal escapes (the wire cut it to
    // 1,024 characters, every one of which the client was told).
    words = HOSTILE;
    const free = await refused("free");
    assertShown(free, "free text");
    assert.ok(free.startsWith("the worker refused the job: open /home/worker"), free);
    assert.ok(free.endsWith("…"), free);
    // Shaped as a refusal of one field, the rest hostile: the field is kept, the rest bounded.
    words = `invalid body for "inference.submit": job.params.temperature: ${HOSTILE}`;
    const field = await refused("field");
    assertShown(field, "a field's refusal");
    assert.ok(
      field.startsWith("the worker refused the job: job.params.temperature: open /home"),
      field,
    );
    // A field path too long to be one is not taken for one.
    words = `invalid body for "inference.submit": job.${"a".repeat(500)}: x`;
    const long = await refused("long");
    assertShown(long, "a long path");
    // What this version's worker writes (`describeIssue`) reads as before, less the message type.
    words = 'invalid body for "inference.submit": job.params.topP: Too big: expected number <=1';
    assert.equal(
      await refused("honest"),
      "the worker refused the job: job.params.topP: Too big: expected number <=1",
    );
  } finally {
    await toWorker.close();
    await atWorker.close();
  }
});

Deno.test("a worker's typed refusal (invalid_generation_params, context_length_exceeded) carries its words bounded and without control characters; its numbers are still read", async () => {
  let words = "";
  const { toWorker, atWorker } = await refusingWorker("invalid_generation_params", () => words);
  const port = new RemoteInferencePort(toWorker);
  try {
    words = HOSTILE;
    const error = await port.submit(job("typed")).then(() => undefined, (e) => e);
    assert.ok(error instanceof InvalidGenerationParamsError, String(error));
    const told = toldClient(error);
    assert.equal(told.status, 400);
    assert.equal(told.code, "invalid_generation_params");
    assertShown(told.message, "typed refusal");
    assert.equal([...told.message].length, MAX_REFUSAL_CHARS);
    words = "temperature: must be in [0, 2], got 9";
    const honest = await port.submit(job("honest")).then(() => undefined, (e) => e);
    assert.equal((honest as Error).message, words);
  } finally {
    await toWorker.close();
    await atWorker.close();
  }
  const long = "the prompt is 900 tokens; the model's context window of 512 leaves no room for " +
    "output (at most 511 prompt tokens)";
  const context = await refusingWorker("context_length_exceeded", () => `${long}\x1b[2J`);
  try {
    const port2 = new RemoteInferencePort(context.toWorker);
    const error = await port2.submit(job("context")).then(() => undefined, (e) => e);
    assert.ok(error instanceof ContextLengthError, String(error));
    // The escape's control character is gone; the rest of its words are the worker's.
    assert.equal(error.message, `${long} [2J`);
    assert.equal(error.tokens, 900);
    assert.equal(error.contextLength, 512);
  } finally {
    await context.toWorker.close();
    await context.atWorker.close();
  }
});

Deno.test("a forwarding node's only worker refusing with 10 KB of free text: the client's invalid_generation_params is bounded and without control characters; nothing runs, nothing is recorded", async () => {
  const system = new ActorSystem({ name: "remote-refusal-words" });
  const refuser = await refusingWorker("invalid_body", () => HOSTILE);
  const workers = new Workers([refuser.toWorker], [served]);
  const router = await spawnRouter(system, workers);
  try {
    const error = await router.port.submit(job("router")).then(() => undefined, (e) => e);
    const told = toldClient(error);
    assert.equal(told.code, "invalid_generation_params", String(error));
    assert.equal(told.status, 400);
    assertShown(told.message, "through the router");
    await router.settled();
    // The worker ran nothing: no receipt, claim or lock about it, nobody paid or slashed.
    const key = toHex(refuser.toWorker.peerKey!);
    const recorded = JSON.stringify(
      [router.recorder.told, workers.told],
      (_k, v) => v instanceof Uint8Array ? toHex(v) : v,
    );
    assert.ok(!recorded.includes(key), `told about the worker: ${recorded}`);
    assert.equal(router.recorder.told.length, 0);
  } finally {
    await refuser.toWorker.close();
    await refuser.atWorker.close();
    await system.shutdown();
  }
});
