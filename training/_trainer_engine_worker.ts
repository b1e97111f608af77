/**
 * The worker of a {@link WorkerTrainerEngine} (`trainer_engine.ts`): an
 * {@link InProcessTrainerEngine} on a thread of its own, so a round's steps and the opening of
 * challenged steps never hold the node's event loop. It gets the trainer's key and shard once
 * (`init`), then trains and opens on request, answering each by its id, in order.
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
/** Requests run one after another, as they came: a challenge never overtakes its round. */
let queue: Promise<void> = Promise.resolve();

port.onmessage = (event) => {
  const request = event.data;
  queue = queue.then(async () => {
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
    }
  });
};
