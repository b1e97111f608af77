/**
 * Child process of `text_model_test.ts` (a dropped stream), run with `--v8-flags=--expose-gc` (the
 * test runner has no `gc`): on a worker-mode model in `Deno.args[0]`, opens streams, reads one
 * chunk of each and drops them without cancelling, with no signal and with one long-lived
 * `AbortSignal`; collects garbage; prints, as JSON, the KV caches the worker held before and after,
 * and the abort listeners still on the signal.
 *
 * @module
 */
import { TextModel } from "../../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";

const STREAMS = 5;
/** Rounds of collection, each followed by a turn for the finalizers and the worker's replies. */
const GC_ROUNDS = 20;
const GC_TURN_MS = 20;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

/** An AbortSignal that counts the abort listeners on it. */
function countedSignal(): { signal: AbortSignal; listeners: Set<unknown> } {
  const signal = new AbortController().signal;
  const listeners = new Set<unknown>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  type Listener = EventListenerOrEventListenerObject;
  signal.addEventListener = (
    type: string,
    listener: Listener,
    options?: AddEventListenerOptions,
  ) => {
    if (type === "abort") listeners.add(listener);
    add(type, listener, options);
  };
  signal.removeEventListener = (
    type: string,
    listener: Listener,
    options?: EventListenerOptions,
  ) => {
    if (type === "abort") listeners.delete(listener);
    remove(type, listener, options);
  };
  return { signal, listeners };
}

async function openAndDrop(model: TextModel, signal?: AbortSignal): Promise<void> {
  for (let i = 0; i < STREAMS; i++) {
    const stream = model.generate(
      [72, 101, 108, 108, 111],
      { ...DEFAULT_GENERATION_PARAMS, maxTokens: 100, seed: i },
      signal ? { signal } : undefined,
    );
    const reader = stream.getReader();
    await reader.read();
    reader.releaseLock();
  }
}

async function collectGarbage(): Promise<void> {
  for (let i = 0; i < GC_ROUNDS; i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, GC_TURN_MS));
  }
}

const model = await TextModel.load(Deno.args[0], {
  intraOpThreads: 1,
  worker: true,
  workerCount: 1,
});
const held = async () => (await model.workerStats())[0].sequences;
const { signal, listeners } = countedSignal();
const report: Record<string, number> = {};
try {
  await openAndDrop(model);
  report.plainBefore = await held();
  await collectGarbage();
  report.plainAfter = await held();
  await openAndDrop(model, signal);
  report.signalledBefore = await held();
  report.listenersBefore = listeners.size;
  await collectGarbage();
  report.signalledAfter = await held();
  report.listenersAfter = listeners.size;
} finally {
  await model.dispose();
}
console.log(JSON.stringify(report));
