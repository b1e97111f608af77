/**
 * How the InferenceActor turns an accepted submission into a queue entry and the handle its
 * requester gets: the checks a text job must pass before it takes a queue slot (model kind,
 * `topLogprobs`, generation parameters, prompt length, resume prefix), the {@link TextJobRun}
 * and the temporary child runner that computes it, and the one-shot pass of a tensor job. Each
 * entry reports its end to the actor as a `job_ended` message, so the actor's lanes are only
 * ever touched inside its `receive`.
 *
 * Owned by the actor (`inference_actor.ts`), which builds one {@link JobPreparer} in its
 * constructor and calls it from `#submit`. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import { JobCancelledError } from "./inference_errors.ts";
import {
  JobRunner,
  type JobRunnerMessage,
  type TextJobHandle,
  TextJobRun,
} from "./inference_job.ts";
import type { GenerativeModel, OneShotModel, ProverHook } from "./inference_models.ts";
import type { InferenceMessage, TensorJobHandle } from "./inference_actor.ts";
import { jobPromptText } from "../protocols/job_input.ts";
import {
  generationParamsSchema,
  type TensorData,
  type TensorJob,
  type TextJob,
} from "../protocols/job.ts";
import {
  checkPromptFits,
  EmptyPromptError,
  InvalidGenerationParamsError,
  WrongModelKindError,
} from "../inference/errors.ts";
import { MAX_TOP_LOGPROBS } from "../inference/top_logprobs.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import type { UnreadTokenBudget } from "./_unread_token_budget.ts";
import {
  checkResumePrefix,
  InvalidResumeError,
  isResumable,
} from "../inference/resumed_generation.ts";

/** A job known to the actor, from submission to the end. */
export interface JobEntry {
  jobId: string;
  modelCid: string;
  /** Starts the job in a child runner; called once when a slot frees. */
  start: (ctx: ActorContext<InferenceMessage>) => Promise<void>;
  /** Cancels the job wherever it is. */
  cancel: () => void;
  /**
   * Tell a running job whether other jobs wait for its model's seats (`TextJobRun.setContended`:
   * a slow reader's job then runs on into memory); absent for a tensor job, which has no reader.
   */
  contended?: (waiting: boolean) => void;
  /**
   * Whether the job has already ended (a queued job its requester cancelled), its `job_ended`
   * still on the way: it is not given a slot that frees meanwhile.
   */
  ended: () => boolean;
  state: "queued" | "running";
  /** The submission's `SubmitJob.onQueued`. */
  onQueued?: (position: number) => void;
}

/** A submission made ready: its entry in the actor's queue and its requester's handle. */
export interface PreparedJob {
  entry: JobEntry;
  handle: TextJobHandle | TensorJobHandle;
}

/** Hex characters of the job id used in a runner's name: unique enough to read in a tree. */
const RUNNER_ID_CHARS = 12;

/** What a {@link JobPreparer} needs from the InferenceActor that owns it. */
export interface JobPreparerOptions {
  /** The actor's prover hook (`InferenceActorOptions.prover`). */
  prover?: ProverHook;
  /** The actor's clock. */
  now: () => number;
  /** The actor's own ref, captured in its `preStart`: where runs report their end. */
  selfRef: () => ActorRef<InferenceMessage> | undefined;
  /** The node's budget of unread token bytes (`actors/_unread_token_budget.ts`). */
  unreadBudget?: UnreadTokenBudget;
  /** Timers of the slow-reader graces; default the system's. */
  timers?: ConnectionTimers;
}

/** Checks submissions and builds their queue entries; one per InferenceActor. */
export class JobPreparer {
  #options: JobPreparerOptions;
  #runnerSeq = 0;

  /**
   * Create it (the actor does, in its constructor).
   *
   * @param options See {@link JobPreparerOptions}.
   */
  constructor(options: JobPreparerOptions) {
    this.#options = options;
  }

  /** A text job's entry and handle; throws the typed refusal of a job that fails a check. */
  prepareText(
    job: TextJob,
    id: string,
    model: GenerativeModel | OneShotModel,
    submittedAt: number,
    topLogprobs: number,
    resume: readonly number[] = [],
    input?: Uint8Array,
  ): PreparedJob {
    if (!("generate" in model)) {
      throw new WrongModelKindError(model.info.cid, "text", model.info.kind);
    }
    if (!Number.isSafeInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new InvalidGenerationParamsError(
        `topLogprobs: must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${topLogprobs}`,
      );
    }
    // Parameters are checked here, not when the job starts, so a bad request is refused with a
    // typed error before it takes a queue slot.
    const checked = generationParamsSchema.safeParse(job.params);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      const field = ["params", ...issue.path.map(String)].join(".");
      throw new InvalidGenerationParamsError(`${field}: ${issue.message}`);
    }
    // The input's text, then the prompt: checked against the job's input CID first.
    const promptIds = model.tokenizer.encode(jobPromptText(job, input));
    const contextLength = model.info.contextLength ?? Infinity;
    if (promptIds.length === 0) throw new EmptyPromptError();
    // Refused up front (not by the model mid-stream) so the edge can answer 400 before any
    // byte of a stream is sent. A prompt that fits but leaves less room than maxTokens simply
    // ends with finish reason "length".
    checkPromptFits(promptIds.length, contextLength);
    if (resume.length > 0) {
      if (!isResumable(model)) {
        throw new InvalidResumeError(`model ${model.info.name} cannot resume a job here`);
      }
      checkResumePrefix(model, promptIds.length, resume, job.params);
    }
    const run = new TextJobRun({
      job,
      jobId: id,
      model,
      promptIds,
      topLogprobs,
      resume: resume.length > 0 ? resume : undefined,
      prover: this.#options.prover,
      input: job.input === undefined ? undefined : input,
      submittedAt,
      now: this.#options.now,
      unreadBudget: this.#options.unreadBudget,
      timers: this.#options.timers,
      // The run reports its end through the mailbox: the actor's state is only ever touched
      // from receive().
      onEnd: (outcome, tokens, signed) =>
        tellQuietly(this.#options.selfRef(), {
          type: "job_ended",
          jobId: id,
          outcome,
          tokens,
          signed,
        }),
    });
    const entry: JobEntry = {
      jobId: id,
      modelCid: job.model,
      state: "queued",
      // The run reports its end (job_ended) through the mailbox, where the entry leaves the
      // queue or frees its slot: lanes are only ever touched inside receive().
      cancel: () => run.cancel(),
      contended: (waiting) => run.setContended(waiting),
      ended: () => run.ended,
      start: async (ctx) => {
        await this.#spawnRunner(ctx, id, run);
      },
    };
    return { entry, handle: run.handle(model.info, promptIds.length) };
  }

  /** A tensor job's entry and handle; throws if the model is not a one-shot model. */
  prepareTensor(
    job: TensorJob,
    id: string,
    model: GenerativeModel | OneShotModel,
  ): PreparedJob {
    if (!("run" in model)) {
      throw new WrongModelKindError(model.info.cid, "tensor", model.info.kind);
    }
    const outputs = Promise.withResolvers<Record<string, TensorData>>();
    // A rejection the requester never awaits must not become an unhandled rejection.
    outputs.promise.catch(() => {});
    let settled = false;
    const entry: JobEntry = {
      jobId: id,
      modelCid: job.model,
      state: "queued",
      cancel: () => {
        // A running one-shot pass cannot be interrupted; only a queued job is cancelled.
        if (entry.state !== "queued" || settled) return;
        settled = true;
        outputs.reject(new JobCancelledError(id));
        tellQuietly(this.#options.selfRef(), {
          type: "job_ended",
          jobId: id,
          outcome: "cancelled",
          tokens: 0,
        });
      },
      ended: () => settled,
      start: (ctx) => {
        if (settled) return Promise.resolve(); // cancelled while queued; job_ended is on its way
        const self = ctx.self;
        model.run(job.inputs).then(
          (result) => {
            settled = true;
            outputs.resolve(result);
            tellQuietly(self, { type: "job_ended", jobId: id, outcome: "finished", tokens: 0 });
          },
          (error) => {
            settled = true;
            outputs.reject(error);
            tellQuietly(self, { type: "job_ended", jobId: id, outcome: "failed", tokens: 0 });
          },
        );
        return Promise.resolve();
      },
    };
    return {
      entry,
      handle: {
        kind: "tensor",
        jobId: id,
        model: model.info,
        outputs: outputs.promise,
        cancel: () => entry.cancel(),
      },
    };
  }

  async #spawnRunner(
    ctx: ActorContext<InferenceMessage>,
    id: string,
    run: TextJobRun,
  ): Promise<ActorRef<JobRunnerMessage>> {
    const name = `${ctx.name}/job-${id.slice(0, RUNNER_ID_CHARS)}-${++this.#runnerSeq}`;
    return await ctx.spawn<JobRunnerMessage>({
      name,
      factory: () => new JobRunner(run),
      // A job is not restarted after a crash: its requester has seen part of the stream, and a
      // silent rerun would duplicate it. The runner reports the failure instead.
      restart: "temporary",
    });
  }
}

/** Tell the actor `message`, ignoring a refusal (the actor is stopping). */
export function tellQuietly(
  ref: ActorRef<InferenceMessage> | undefined,
  message: InferenceMessage,
): void {
  // The actor may already be stopping; a lost "ended" note then has nobody left to inform.
  ref?.tell(message).catch(() => {});
}
