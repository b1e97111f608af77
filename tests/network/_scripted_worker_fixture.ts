/**
 * Scripted workers for the router's tests (reviews s45 and s64): a worker whose every job is a
 * scripted wire stream, the wire events of the six-token job of `_hostile_worker_fixture.ts`,
 * and a router over in-memory worker connections on a fake clock, with a NetworkActor stand-in
 * that records whom it keeps off the model and a ValidatorActor stand-in that records what it
 * is told (the ledger's input).
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import type { Connection } from "../../protocols/connection.ts";
import type { Identity } from "../../protocols/identity.ts";
import {
  type InferenceEvent,
  type SubmitBody,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { StreamSigner } from "../../protocols/stream_commitment.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import {
  inputHashOf,
  type ReceiptEnd,
  signReceipt,
  textOutputHash,
} from "../../protocols/receipt.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { INFO } from "./_router_fixture.ts";
import { linked, type TestWorker, TEXT, token, TOKENS } from "./_hostile_worker_fixture.ts";
import type { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { spawnRouter, Workers } from "./_router_doubles.ts";

/**
 * A worker that answers each job with the stream `script` gives (its `n`th submission, from 0),
 * or refuses it by throwing.
 */
export function scriptedWorker(
  script: (body: SubmitBody, n: number, identity: Identity) => ReadableStream<InferenceEvent>,
): Promise<TestWorker> {
  return linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      return Promise.resolve().then(() =>
        signed(script(body, submissions.length - 1, identity), identity, body)
      );
    });
  });
}

/**
 * `events` as a worker of `identity` sends them for `body`: each token or tokens event signed
 * over the job's stream so far, the resumed prefix included, final where its last token carries
 * a finish reason (`protocols/stream_commitment.ts`), whatever the event says. One event per pull, as `events` gives them.
 */
export function signed(
  events: ReadableStream<InferenceEvent>,
  identity: Identity,
  body: SubmitBody,
): ReadableStream<InferenceEvent> {
  const signer = new StreamSigner(identity, jobId(body.job), body.resume ?? []);
  const reader = events.getReader();
  return new ReadableStream<InferenceEvent>({
    pull: async (c) => {
      const next = await reader.read();
      if (next.done) return c.close();
      const event = next.value;
      if (event.kind === "token") {
        c.enqueue({
          ...event,
          sig: signer.sign([event.tokenId], event.finishReason !== undefined),
        });
      } else if (event.kind === "tokens") {
        const final = event.tokens[event.tokens.length - 1].finishReason !== undefined;
        c.enqueue({ ...event, sig: signer.sign(event.tokens.map((t) => t.tokenId), final) });
      } else c.enqueue(event);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/** A stream of `list`, one event per pull, left open (or failed with `fail`'s error). */
export function events(list: InferenceEvent[], fail?: Promise<VeriflowError>): ReadableStream {
  let i = 0;
  return new ReadableStream<InferenceEvent>({
    pull: async (c) => {
      if (i < list.length) c.enqueue(list[i++]);
      else if (fail !== undefined) c.error(await fail);
      else await new Promise(() => {});
    },
  }, { highWaterMark: 0 });
}

/** The start event of `job` (`extra`: a `resumedFrom`, ...). */
export function start(job: TextJob, extra: Partial<InferenceEvent & { kind: "start" }> = {}) {
  return { kind: "start", jobId: jobId(job), model: INFO, promptTokens: 1, ...extra } as const;
}

/** Token `i` of the job on the wire (its text `text`). */
export function wireToken(i: number, text = TEXT[i]): InferenceEvent {
  const { index, tokenId, finishReason } = token(i);
  return { kind: "token", index, tokenId, text, ...(finishReason ? { finishReason } : {}) };
}

/** `identity`'s receipt for `job` over `output` and `tokenCount` tokens; ended `end` if set. */
export function receiptFor(
  job: TextJob,
  identity: Identity,
  output: string,
  tokenCount = TOKENS,
  end?: ReceiptEnd,
) {
  return signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: job.model,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: textOutputHash(output),
    commitment: { scheme: "vf-fp1", root: "0".repeat(64), chunkSize: 16, tokenBytes: 4 },
    tokenCount,
    ...(end === undefined ? {} : { end }),
    timings: { startedAt: 0, firstTokenMs: 0, totalMs: 0 },
  }, identity);
}

/**
 * The end event of `job` after `tokens` of the worker's tokens (of a prompt of `promptTokens`),
 * with `receipt` if given.
 */
export function endEvent(
  job: TextJob,
  tokens: number,
  receipt?: unknown,
  promptTokens = 1,
): InferenceEvent {
  return {
    kind: "end",
    summary: {
      jobId: jobId(job),
      finishReason: "length",
      usage: { promptTokens, completionTokens: tokens },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      ...(receipt ? { receipt } : {}),
    },
  } as InferenceEvent;
}

/**
 * A router's inference port over `connections` (best first), on `timers`, one token per event,
 * with no queue hold unless `queueHoldMs` is given (a hedge would muddle what most tests show).
 */
export async function router(
  connections: Connection[],
  timers = new ManualTimers(),
  queueHoldMs = Infinity,
) {
  const system = new ActorSystem({ name: "scripted-router" });
  const workers = new Workers(connections);
  const now = () => timers.now();
  const busy = new BusyRefusals({ now });
  const unresumable = new BusyRefusals({ now });
  const { port, recorder } = await spawnRouter(
    system,
    workers,
    { tokensPerEvent: 1, timers, queueHoldMs },
    busy,
    unresumable,
  );
  return { system, workers, recorder, port, busy, unresumable, timers };
}

/**
 * Read a job to its end: each token's position and the text the client got, the code its stream
 * failed with, its done; `crashing` is told each token the client reads.
 */
export async function run(port: NetworkInferencePort, job: TextJob, crashing?: CrashingWorker) {
  const handle = await port.submit(job);
  const positions: number[] = [];
  let text = "";
  let failed: string | undefined;
  try {
    for await (const t of handle.tokens) {
      positions.push(t.index);
      text += t.text;
      crashing?.read(positions.length);
    }
  } catch (error) {
    failed = (error as { code?: string }).code ?? String(error);
  }
  const summary = await handle.done;
  return { handle, positions, text, failed, summary };
}

/** A worker of {@link crashingWorker}: `read(n)` tells it the client has read `n` tokens. */
export interface CrashingWorker extends TestWorker {
  read(tokens: number): void;
}

/**
 * A worker that starts each job, sends `list` and loses its connection once the client has read
 * `after` tokens (default: every token in `list`), as a worker that crashes mid-stream (the
 * router sees `connection_closed`).
 */
export async function crashingWorker(
  list: InferenceEvent[],
  after?: number,
  extra: Partial<InferenceEvent & { kind: "start" }> = {},
): Promise<CrashingWorker> {
  const sent = after ?? list.filter((e) => e.kind === "token").length;
  const delivered = Promise.withResolvers<void>();
  if (sent === 0) delivered.resolve();
  const worker = await linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const all: InferenceEvent[] = [start(body.job, extra), ...list];
      let i = 0;
      return Promise.resolve(
        signed(
          new ReadableStream<InferenceEvent>({
            pull: async (c) => {
              if (i < all.length) return c.enqueue(all[i++]);
              await delivered.promise;
              await atWorker.close();
              await new Promise(() => {});
            },
          }, { highWaterMark: 0 }),
          identity,
          body,
        ),
      );
    });
  });
  return { ...worker, read: (n) => void (n === sent && delivered.resolve()) };
}

/** As {@link crashingWorker}, with `extra` in its start event (a taker that says more: review s81 F2). */
export function crashingWith(
  extra: Partial<InferenceEvent & { kind: "start" }>,
  list: InferenceEvent[],
): Promise<CrashingWorker> {
  return crashingWorker(list, undefined, extra);
}
