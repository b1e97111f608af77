/**
 * Failover seen from the wire, with workers scripted event by event: what a worker that takes
 * over a job (or the first one) can and cannot get the router to relay, accept and pay.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  INFERENCE_PROTOCOL,
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { proveJob } from "../../proof/prover.ts";
import { params } from "../server/_fixtures.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

const MODEL = { cid: "bafkreviewmodel", name: "review", kind: "text" as const };
const TOKENS = 8;
const VOCAB = 256;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz";

/** The job's true output, position by position, as a prover sees it. */
function chunk(index: number): TokenChunk {
  const text = ALPHABET[index];
  const tokenId = text.charCodeAt(0);
  return {
    index,
    tokenId,
    text,
    fingerprint: fingerprintOf(new Float32Array(VOCAB), tokenId),
    vocabSize: VOCAB,
    ...(index === TOKENS - 1 ? { finishReason: "length" as const } : {}),
  };
}

/** Positions `from … to−1` as token events. */
function tokenEvents(from: number, to: number): InferenceEvent[] {
  const events: InferenceEvent[] = [];
  for (let i = from; i < to; i++) {
    const { index, tokenId, text, finishReason } = chunk(i);
    events.push({ kind: "token", index, tokenId, text, ...(finishReason ? { finishReason } : {}) });
  }
  return events;
}

function start(body: SubmitBody): InferenceEvent {
  const from = body.resume?.length ?? 0;
  return {
    kind: "start",
    jobId: jobId(body.job),
    model: MODEL,
    promptTokens: 2,
    ...(from > 0 ? { resumedFrom: from } : {}),
  };
}

/** An `end` event with a finished summary and the worker's receipt over positions `0 … n−1`. */
async function endOver(body: SubmitBody, identity: Identity, n: number): Promise<InferenceEvent> {
  const chunks = Array.from({ length: n }, (_, i) => chunk(i));
  const { receipt } = await proveJob(body.job, ReadableStream.from(chunks), identity);
  return {
    kind: "end",
    summary: {
      jobId: jobId(body.job),
      finishReason: "length",
      usage: { promptTokens: 2, completionTokens: n - (body.resume?.length ?? 0) },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      receipt,
    },
  };
}

interface ScriptedWorker {
  identity: Identity;
  toWorker: Connection;
  atWorker: Connection;
  submissions: SubmitBody[];
}

/** A worker answering each submission with the events `script` gives; `open`: never ends. */
async function scripted(
  script: (body: SubmitBody, identity: Identity) => Promise<InferenceEvent[]>,
  open = false,
): Promise<ScriptedWorker> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols, closeGraceMs: 10 }),
    Connection.open(b, { identity, protocols, closeGraceMs: 10 }),
  ]);
  const submissions: SubmitBody[] = [];
  atWorker.handle(SubmitMessage, async (body) => {
    submissions.push(body);
    const events = await script(body, identity);
    return new ReadableStream<InferenceEvent>({
      start: (c) => {
        events.forEach((e) => c.enqueue(e));
        if (!open) c.close();
      },
    });
  });
  return { identity, toWorker, atWorker, submissions };
}

/** A router over `workers`, in the order it prefers them. */
async function routerOver(workers: ScriptedWorker[]) {
  const system = new ActorSystem({ name: "failover-review" });
  const net = new Workers(workers.map((w) => w.toWorker), [MODEL]);
  const { port, recorder, settled } = await spawnRouter(system, net);
  const job: TextJob = {
    kind: "text",
    model: MODEL.cid,
    prompt: "hi",
    params: params({ maxTokens: TOKENS }),
    nonce: crypto.randomUUID(),
  };
  const close = async () => {
    for (const w of workers) {
      await w.toWorker.close();
      await w.atWorker.close();
    }
    await system.shutdown();
  };
  return { port, job, net, recorder, settled, close };
}

async function read(reader: ReadableStreamDefaultReader<StreamedToken>, n = Infinity) {
  const tokens: StreamedToken[] = [];
  while (tokens.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    tokens.push(value);
  }
  return tokens;
}

Deno.test("a worker that takes over a job and ends it at once, with a receipt over the lost worker's tokens, is not paid for them: the job resumes on the next worker and the client gets every token", async () => {
  const CUT = 3;
  // The first worker streams three tokens and is then lost.
  const first = await scripted(
    (body) => Promise.resolve([start(body), ...tokenEvents(0, CUT)]),
    true,
  );
  // The next one confirms the resume, produces nothing, and ends the job "finished" with a
  // receipt over the prefix it was handed: the lost worker's range, signed as its own.
  const taker = await scripted(async (body, identity) => [
    start(body),
    await endOver(body, identity, body.resume?.length ?? 0),
  ]);
  // An honest one resumes where it is asked and signs over the whole output.
  const honest = await scripted(async (body, identity) => [
    start(body),
    ...tokenEvents(body.resume?.length ?? 0, TOKENS),
    await endOver(body, identity, TOKENS),
  ]);
  const t = await routerOver([first, taker, honest]);
  try {
    const handle = await t.port.submit(t.job);
    const reader = handle.tokens.getReader();
    assert.deepEqual((await read(reader, CUT)).map((x) => x.index), [0, 1, 2]);
    await first.atWorker.close(); // the first worker dies
    const rest = await read(reader);
    assert.deepEqual(taker.submissions.map((s) => s.resume?.length), [CUT]);
    const summary = await handle.done;
    await t.settled();
    const paid = t.recorder.told.flatMap((m) => m.type === "receipt" ? [m.origin] : []);
    assert.ok(!paid.includes(toHex(taker.identity.publicKey)), "the taker's receipt is not paid");
    assert.deepEqual(rest.map((x) => x.index), [3, 4, 5, 6, 7], "no token missing");
    assert.equal(summary.finishReason, "length");
    assert.equal(summary.usage.completionTokens, TOKENS);
    assert.equal(
      toHex(parseReceipt(summary.receipt).worker),
      toHex(honest.identity.publicKey),
      "the worker that produced the rest signs for the job",
    );
    assert.deepEqual(paid, [toHex(honest.identity.publicKey)]);
    assert.ok(t.net.avoided.has(toHex(taker.identity.publicKey)), "the taker is kept off");
  } finally {
    await t.close();
  }
});

Deno.test("a worker that streams past maxTokens (its last position not marked as the end) is a broken stream: the client gets exactly maxTokens tokens, the last from a worker that resumes at it", async () => {
  const OVER = 3;
  // Every token unmarked up to maxTokens + OVER, the last of those marked: more than the job.
  const greedy = await scripted((body) =>
    Promise.resolve([
      start(body),
      ...tokenEvents(0, TOKENS - 1),
      ...Array.from({ length: OVER + 1 }, (_, i): InferenceEvent => ({
        kind: "token",
        index: TOKENS - 1 + i,
        tokenId: 120,
        text: "x",
        ...(i === OVER ? { finishReason: "length" as const } : {}),
      })),
    ])
  );
  const honest = await scripted(async (body, identity) => [
    start(body),
    ...tokenEvents(body.resume?.length ?? 0, TOKENS),
    await endOver(body, identity, TOKENS),
  ]);
  const t = await routerOver([greedy, honest]);
  try {
    const handle = await t.port.submit(t.job);
    const tokens = await read(handle.tokens.getReader());
    const summary = await handle.done;
    assert.deepEqual(tokens.map((x) => x.index), [0, 1, 2, 3, 4, 5, 6, 7], "maxTokens, each once");
    assert.equal(tokens.map((x) => x.text).join(""), ALPHABET.slice(0, TOKENS));
    assert.equal(tokens.at(-1)?.finishReason, "length");
    assert.equal(summary.usage.completionTokens, TOKENS);
    assert.equal(summary.finishReason, "length");
    assert.equal(toHex(parseReceipt(summary.receipt).worker), toHex(honest.identity.publicKey));
    assert.ok(honest.submissions[0].resume !== undefined, "resumed, not started over");
    await t.settled();
    assert.ok(t.net.avoided.has(toHex(greedy.identity.publicKey)), "kept off the model");
  } finally {
    await t.close();
  }
});
