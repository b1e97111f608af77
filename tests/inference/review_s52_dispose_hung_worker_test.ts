/**
 * Review s52 of a worker-mode model's disposal (`inference/_model_worker_pool.ts`). A worker
 * that leaves its requests unanswered for `restart.stallMs` is taken for hung (a graph that never
 * ends) and terminated. But `dispose()` stopped that watch first, then waited for each worker to
 * answer its `dispose` request: a hung worker never does, so disposing the model (the node's
 * shutdown, which closes its models last) waited for ever, its worker spinning. The watch now
 * runs until the workers are gone: a worker hung during disposal is terminated like any other.
 */
import assert from "node:assert/strict";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { params } from "./_fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s52-hung-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

const HUNG_WORKER_URL = new URL("./_review_s52_hung_worker.ts", import.meta.url).href;
/** Far beyond the stall time below: only a dispose that waits for the hung worker reaches it. */
const NEVER_MS = 20_000;

Deno.test("disposing a worker-mode model whose worker hangs in a step ends once the worker is taken for hung, instead of waiting for it for ever", async () => {
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: HUNG_WORKER_URL,
    restart: { backoffInitialMs: 0, stallMs: 500 },
  });
  // The stream sends its first step at once (worker mode): the worker hangs on it.
  const reader = model.generate([72, 101, 108, 108, 111], params({ maxTokens: 4 })).getReader();
  const read = reader.read().then(() => undefined, (error: unknown) => error);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const never = new Promise<"waiting">((resolve) => {
    timer = setTimeout(() => resolve("waiting"), NEVER_MS);
  });
  try {
    const outcome = await Promise.race([model.dispose().then(() => "disposed" as const), never]);
    assert.equal(outcome, "disposed", "dispose() waits for the hung worker for ever");
  } finally {
    clearTimeout(timer);
  }
  // The step the worker hung on failed, as any request a hung worker held does.
  assert.ok(await read instanceof Error);
});
