/**
 * The worker of a {@link WorkerStepRerun} (`step_rerun.ts`): `checkVerifiedStep` on a thread of
 * its own, so a validator's re-run of opened steps never holds the node's event loop. It answers
 * each step by its id, one after another in the order they came (one tfjs engine).
 *
 * It also unseals a trainer's answer (`unsealStepOpenings`, in turn with the steps) with the
 * validator's secret key, sent with each such request and zeroed once the identity holds it, and
 * checks the structure of what it opened (`verifyOpeningsPlaintext`, an `open` request); the
 * plaintext and the decoded states go back transferred. Neither throws on the answer's account.
 *
 * Each request starts in a task of its own (a `setTimeout` callback), not in the message handler:
 * a `node:worker_threads` worker past its heap limit inside a message handler, or in a promise
 * job, stops with no event at all, while one past it in a timer's callback ends with an `error`
 * event (`ERR_WORKER_OUT_OF_MEMORY`) that reaches the main thread at once
 * (`tmp/s79/fay/probe.ts`, Deno 2.9.6). So a request that fills the heap in its synchronous part
 * (unsealing and the structure check are wholly synchronous; a re-run up to its first `await`) is
 * reported at once; what a re-run allocates after an `await` runs in promise jobs and is still
 * found only by the silence bound (`step_rerun.ts`).
 *
 * A `TrainingError` is the step's answer (its inputs do not fit). Any other error is this worker's:
 * a tfjs-wasm engine that once ran out of memory answers `Aborted()` or "memory access out of
 * bounds" to every later re-run, for good (review s77 vtrain F2). So it is answered `fatal`, and
 * the worker closes itself, runs nothing more, and is replaced by the main thread.
 *
 * Started by `WorkerStepRerun`, in a worker with a heap limit of its own
 * (`_heap_limited_worker.ts`); imported only by tests' stand-ins that wrap it
 * (`tests/training/_step_rerun_stand_in.ts`, `tests/training/_engine_abort_stand_in.ts`,
 * `tests/training/_heap_hog_worker.ts`).
 *
 * @module
 */
import { Identity } from "../protocols/identity.ts";
import { type UnsealResult, unsealStepOpenings } from "./step_opening.ts";
import {
  IN_PROCESS_STEP_RERUN,
  type OpenedAnswer,
  type OpenRequest,
  type StepRerunReply,
  type StepRerunRequest,
  type UnsealRequest,
} from "./step_rerun.ts";
import { verifyOpeningsPlaintext } from "./step_verify.ts";
import { TrainingError } from "./training_error.ts";

/** What the main thread asks of this worker. */
type Request = StepRerunRequest | UnsealRequest | OpenRequest;

const port = globalThis as unknown as {
  postMessage(message: StepRerunReply, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<Request>) => void) | null;
  close(): void;
};

/** One re-run at a time, in the order asked: their answers come back in that order. */
let queue: Promise<void> = Promise.resolve();
/** Set once a re-run failed as the worker's own: nothing more runs on its engine. */
let broken = false;

/** The answer of `request` unsealed with the validator's key (zeroed once the identity holds it). */
function unsealed(request: UnsealRequest | OpenRequest): UnsealResult {
  const validator = Identity.fromSecretKey(request.validatorSecret);
  request.validatorSecret.fill(0);
  return unsealStepOpenings(request.sealed, request.challenge, request.receipt, validator);
}

/** What `request` opens: unsealed, and when it opened, its structure checked. */
function opened(request: OpenRequest): OpenedAnswer {
  const answer = unsealed(request);
  if (!answer.ok) return { unsealed: answer };
  const { receipt, challenge, arch } = request;
  return {
    unsealed: answer,
    structure: verifyOpeningsPlaintext(receipt, challenge, answer.plaintext, arch),
  };
}

/**
 * The distinct `ArrayBuffer`s under `value` (typed arrays in objects, arrays and maps), to
 * transfer: cloned, each decoded state would be copied again on the main thread.
 */
function buffersOf(value: unknown, found = new Set<ArrayBuffer>()): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) found.add(value.buffer);
  } else if (value instanceof Map) {
    for (const item of value.values()) buffersOf(item, found);
  } else if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) buffersOf(item, found);
  }
  return [...found];
}

/** Run `work` in a task of its own (see the module doc), settling with what it gives. */
function inTask<T>(work: () => Promise<T>): Promise<T> {
  return new Promise((resolve, reject) => setTimeout(() => work().then(resolve, reject), 0));
}

port.onmessage = (event) => {
  const request = event.data;
  const { id } = request;
  queue = queue.then(() => inTask(() => answer(request, id)));
};

/** Answer one request (its reply posted); marks the worker broken on a failure of its own. */
async function answer(request: Request, id: number): Promise<void> {
  if (broken) return;
  try {
    if ("op" in request) {
      const reply: StepRerunReply = request.op === "open"
        ? { id, ok: true, opened: opened(request) }
        : { id, ok: true, unsealed: unsealed(request) };
      // The plaintext (the cipher allocates it) and the decoded states are this reply's own.
      port.postMessage(reply, buffersOf(reply));
      return;
    }
    const { receipt, step, options, only } = request as StepRerunRequest;
    const result = await IN_PROCESS_STEP_RERUN.check(receipt, step, options, only);
    port.postMessage({ id, ok: true, result });
  } catch (error) {
    if (error instanceof TrainingError) {
      port.postMessage({ id, ok: false, code: error.code, message: error.message });
      return;
    }
    broken = true;
    port.postMessage({ id, ok: false, fatal: true, message: String(error) });
    port.close();
  }
}
