/**
 * The worker of a {@link WorkerTrainerEngine} (`trainer_engine.ts`): an
 * {@link InProcessTrainerEngine} on a thread of its own, so a round's steps and the opening of
 * challenged steps never hold the node's event loop. It gets the trainer's key and shard once
 * (`init`), then trains and opens on request, answering each by its id, in order; a `cancel`
 * stops the round of its id at its next step (its round is lost).
 *
 * Not imported by anything: started by `WorkerTrainerEngine` with `new Worker(...)`.
 *
 * @module
 */
import { Identity } from "../protocols/identity.ts";
import { type EngineReply, type EngineRequest, InProcessTrainerEngine } from "./trainer_engine.ts";

const port = globalThis as unknown as {
  postMessage(message: EngineReply): void;
  onmessage: ((event: MessageEvent<EngineRequest>) => void) | null;
};

let engine: InProcessTrainerEngine | undefined;
/**
 * Rounds run one after another, and so do openings, each in the order they came; an opening
 * does not wait for a round in progress: the round yields to this worker's event loop before
 * each step, and the opening runs there. A challenge names a receipt, which exists only once its
 * round ended, so it never overtakes its own round. (One queue for both held a challenge of an
 * earlier run behind the whole next round — 60 s and more for a large model or H — and the
 * honest trainer was slashed for `opening_missing`.)
 */
let rounds: Promise<void> = Promise.resolve();
let openings: Promise<void> = Promise.resolve();
/**
 * Let the worker's event loop take messages (an opening) before the round's next step: a
 * message to itself (~0.04 ms; a `setTimeout(0)` costs ~2 ms a step).
 */
const yielder = new MessageChannel();
let resume: (() => void) | undefined;
yielder.port1.onmessage = () => {
  const go = resume;
  resume = undefined;
  go?.();
};
const between = () =>
  new Promise<void>((resolve) => {
    resume = resolve;
    yielder.port2.postMessage(null);
  });

/**
 * The rounds asked for and not yet answered, each with what stops it: a `cancel` is handled at
 * once (not queued), and the run stops before its next step — or does not start, if it waits
 * behind another.
 */
const cancels = new Map<number, AbortController>();

port.onmessage = (event) => {
  const request = event.data;
  if (request.op === "cancel") {
    cancels.get(request.id)?.abort();
    return;
  }
  const cancel = request.op === "train" ? new AbortController() : undefined;
  if (cancel !== undefined) cancels.set(request.id, cancel);
  const run = async () => {
    try {
      let value: unknown;
      if (request.op === "init") {
        engine = new InProcessTrainerEngine(
          Identity.fromSecretKey(request.secretKey),
          request.shard,
          undefined,
          request.traces,
        );
      } else if (engine === undefined) {
        throw new Error("trainer worker used before init");
      } else if (request.op === "train") {
        const id = request.id;
        value = await engine.train(
          request.round,
          (step, loss) => port.postMessage({ id, step, loss }),
          cancel!.signal,
          between,
        );
      } else {
        value = await engine.open(request.challenge);
      }
      port.postMessage({ id: request.id, ok: true, value });
    } catch (error) {
      port.postMessage({
        id: request.id,
        ok: false,
        code: (error as { code?: string }).code ?? "trainer_error",
        message: (error as Error).message,
      });
    } finally {
      cancels.delete(request.id);
    }
  };
  // `init` is the first message: both queues start behind it.
  if (request.op === "init") rounds = openings = rounds.then(run);
  else if (request.op === "train") rounds = rounds.then(run);
  else openings = openings.then(run);
};
