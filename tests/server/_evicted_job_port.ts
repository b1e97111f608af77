/**
 * An inference port over the real InferenceActor whose every job reaches the edge already
 * finished and evicted: its reader (the edge) read nothing, the job ran on into memory to its end
 * and earned its receipt, and then the node's full unread-token budget dropped its unread tokens
 * (`slow_reader`). The scenario of `tests/actors/inference_unread_eviction_test.ts`, played before
 * the handle is handed over, so the edges' answers to it (SSE, one JSON body, WebSocket) can be
 * tested over a real socket however eagerly they read (review s77 sse, F1). The node's real prover
 * signs each job's receipt, so what the receipt covers can be checked.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  InferenceActor,
  type InferenceMessage,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { UnreadTokenBudget } from "../../actors/_unread_token_budget.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { ScriptedModel, StaticModels } from "./_fixtures.ts";
import { readN, textJob } from "../actors/_slow_reader_actor.ts";

/** A one-letter token's estimate in the budget (`tokenBytes`), as the actor tests count it. */
const TOKEN_BYTES = 130;
/**
 * Tokens of each evicted job: with {@link BUDGET_TOKENS} of room, its backlog and the next job's
 * do not both fit, and it holds the most, so it is the one evicted.
 */
export const EVICTED_JOB_TOKENS = 25;
/** The budget's room, in one-letter tokens. */
const BUDGET_TOKENS = 30;
/** The job that pauses while a third waits, making the budget evict: longer than the room left. */
const PUSHING_JOB_TOKENS = 20;

/** The port, the evicted jobs' summaries as the actor gave them, and a way to stop it all. */
export interface EvictedJobPort {
  port: InferencePort;
  /** Each evicted job's summary (its receipt the prover's, as signed), in submission order. */
  summaries: JobSummary[];
  /** Evictions the budget made. */
  evictions(): number;
  close(): Promise<void>;
}

/** Start the actor, its prover and the port (see the module comment). */
export async function evictedJobPort(): Promise<EvictedJobPort> {
  const model = new ScriptedModel();
  const budget = new UnreadTokenBudget(TOKEN_BYTES * BUDGET_TOKENS);
  const system = new ActorSystem({ name: "evicted-job-port" });
  const dir = await Deno.makeTempDir({ prefix: "veriflow-evicted-" });
  const prover = await system.spawn<ProverMessage>({
    name: "prover",
    factory: () => new ProverActor({ identity: Identity.generate(), dir, sweepEveryMs: 0 }),
  });
  // One seat and fake grace timers: the slow-reader tests' set-up (`_slow_reader_actor.ts`).
  const timers = new FakeTimers();
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({
        models: new StaticModels([model]),
        concurrency: 1,
        prover: proverHook(prover),
        unreadBudget: budget,
        slowReaderTimers: timers,
      }),
  });
  const summaries: JobSummary[] = [];
  const submit = async (): Promise<InferenceHandle> => {
    const cid = model.info.cid;
    const hog = await submitJob(ref, textJob(cid, EVICTED_JOB_TOKENS)) as TextJobHandle;
    // A job waits for the seat: after its grace the unread job runs on into memory to its end.
    const pushing = await submitJob(ref, textJob(cid, PUSHING_JOB_TOKENS)) as TextJobHandle;
    timers.fireAll();
    summaries.push(await hog.done);
    // That job's reader pauses while a third waits: the budget fills and evicts the finished job.
    const pushingReader = pushing.tokens.getReader();
    await readN(pushingReader, 3);
    const waiting = await submitJob(ref, textJob(cid, 2)) as TextJobHandle;
    timers.fireAll();
    await pushing.done;
    await readN(pushingReader);
    await readN(waiting.tokens.getReader());
    return hog;
  };
  return {
    port: {
      submit,
      models: () => Promise.resolve([model.info]),
      stats: () => Promise.resolve({} as InferenceStats),
    },
    summaries,
    evictions: () => budget.evictions,
    close: async () => {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
