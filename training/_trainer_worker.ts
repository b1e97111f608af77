/**
 * The entry point of a trainer worker of `cli.ts train` (`training/train_command.ts`): a
 * dedicated `Worker` that stands for one trainer node. It loads the corpus once, keeps its own
 * shard, and for each round it is sent runs {@link trainAndSign} — H local AdamW steps, int8
 * compression, a signed receipt — and posts the report back. tfjs computes synchronously on
 * the thread that calls it, so trainers in workers train on different cores at once.
 *
 * Not imported by anything: started by `train_command.ts` with
 * `new Worker(new URL("./_trainer_worker.ts", import.meta.url), { type: "module" })`.
 *
 * @module
 */
import { Identity } from "../protocols/identity.ts";
import { loadBrownCorpus, splitCorpus, type TextShard } from "./brown_corpus.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { trainAndSign, type TrainerReport } from "./training_round.ts";
import {
  fromWireWeights,
  type TrainerReply,
  trainerReportOf,
  type TrainerRequest,
} from "./_trainer_protocol.ts";

/** The worker side of `postMessage`, typed for what this file sends. */
const port = globalThis as unknown as {
  postMessage(message: TrainerReply, options?: { transfer?: Transferable[] }): void;
  onmessage: ((event: MessageEvent<TrainerRequest>) => void) | null;
};

let shard: TextShard | undefined;
let identity: Identity | undefined;

port.onmessage = async (event) => {
  const request = event.data;
  try {
    if (request.op === "init") {
      const docs = await loadBrownCorpus({ limit: request.corpusLimit });
      shard = splitCorpus(docs, request.trainers).shards[request.trainer];
      identity = Identity.fromSecretKey(request.secretKey);
      port.postMessage({ op: "ready" });
      return;
    }
    if (!shard || !identity) throw new Error("trainer worker used before init");
    const start: GptWeights = fromWireWeights(request.start);
    const started = performance.now();
    const out: unknown = await trainAndSign({
      arch: request.arch,
      round: request.round,
      startModel: request.startModel,
      start,
      shard,
      steps: request.steps,
      dataSeed: request.dataSeed,
      hyper: request.hyper,
      identity,
      backend: request.backend,
      onStep: (step, loss) => port.postMessage({ op: "step", step, loss }),
    });
    const report: TrainerReport = trainerReportOf(out);
    port.postMessage({
      op: "report",
      report,
      ms: performance.now() - started,
    }, { transfer: [report.delta.buffer as ArrayBuffer] });
  } catch (error) {
    port.postMessage({ op: "error", message: (error as Error).stack ?? String(error) });
  }
};
