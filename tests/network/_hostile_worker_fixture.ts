/**
 * What the router's review tests share: an honest worker's port, a router over stand-ins for
 * the NetworkActor and the ValidatorActor (`_router_doubles.ts`), and in-memory worker connections
 * (`broken_worker_test.ts`, `worker_claims_test.ts`).
 */
import type { ActorSystem } from "../../actors/actor_system.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type StreamedToken,
  type SubmitOptions,
} from "../../inference/inference_port.ts";
import type { BusyRefusals } from "../../network/busy_refusals.ts";
import type { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, type SubmitBody } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import { params } from "../server/_fixtures.ts";
import { INFO, MODEL } from "./_router_fixture.ts";
import { spawnRouter, type Workers } from "./_router_doubles.ts";

export const TOKENS = 6;
export const TEXT = "abcdef";

/** Position `i` of every job's output. */
export function token(i: number, text = TEXT[i]): StreamedToken {
  return {
    index: i,
    tokenId: 97 + i,
    text,
    ...(i === TOKENS - 1 ? { finishReason: "length" as const } : {}),
  };
}

export function summaryOf(finishReason: JobSummary["finishReason"], tokens = 0): JobSummary {
  return {
    jobId: "",
    finishReason,
    usage: { promptTokens: 1, completionTokens: tokens },
    timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
  };
}

/** An honest worker's port: runs the job from where it is asked to resume, to its end. */
export class Honest implements InferencePort {
  readonly resumes: (number | undefined)[] = [];
  models() {
    return Promise.resolve([INFO]);
  }
  stats() {
    return Promise.resolve(emptyInferenceStats());
  }
  submit(j: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    const from = options?.resume?.length ?? 0;
    this.resumes.push(options?.resume?.length);
    const done = Promise.withResolvers<JobSummary>();
    let i = from;
    const tokens = new ReadableStream<StreamedToken>({
      pull: (c) => {
        c.enqueue(token(i));
        if (++i === TOKENS) {
          c.close();
          done.resolve({ ...summaryOf("length", TOKENS - from), jobId: jobId(j) });
        }
      },
    }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: jobId(j),
      model: INFO,
      promptTokens: 1,
      tokens,
      done: done.promise,
      cancel: () => done.resolve({ ...summaryOf("cancelled"), jobId: jobId(j) }),
    });
  }
}

export interface TestWorker {
  identity: Identity;
  key: string;
  toWorker: Connection;
  submissions: SubmitBody[];
  close(): Promise<void>;
}

export async function linked(
  serve: (atWorker: Connection, submissions: SubmitBody[], identity: Identity) => void,
): Promise<TestWorker> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity, protocols }),
  ]);
  const submissions: SubmitBody[] = [];
  serve(atWorker, submissions, identity);
  return {
    identity,
    key: toHex(identity.publicKey),
    toWorker,
    submissions,
    close: async () => {
      await toWorker.close();
      await atWorker.close();
    },
  };
}

export function honestWorker(port: Honest): Promise<TestWorker> {
  return linked((atWorker) => serveInference(atWorker, port));
}

export function jobFor(nonce: string): TextJob {
  return { kind: "text", model: MODEL, prompt: "hi", params: params({ maxTokens: TOKENS }), nonce };
}

/**
 * A router's inference port in `system` over `workers` (`spawnRouter`), one token per event; `busy`
 * its record of workers that refused as full (default the port's own).
 */
export async function routerPort(
  system: ActorSystem,
  workers: Workers,
  busy?: BusyRefusals,
): Promise<NetworkInferencePort> {
  return (await spawnRouter(system, workers, { tokensPerEvent: 1 }, busy)).port;
}
