/**
 * A `generate()` stream dropped without being cancelled or read to the end frees its KV cache
 * once it is collected (`abandonedStreams` in `inference/_generation_stream.ts`), also when it was given
 * an `AbortSignal` that lives on (a server's shutdown signal): the listener on the signal must
 * not keep the stream alive, and goes with it. Collection needs `gc`, which the test runner does
 * not expose: the streams live in a child process (`_abandoned_stream_child.ts`).
 */
import assert from "node:assert/strict";
import { buildGptModel } from "../../inference/model_builder.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-abandoned-stream-test-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

Deno.test("abandoned streams free their KV caches and their abort listeners, even while their signal lives on", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./_abandoned_stream_child.ts", import.meta.url).pathname,
      dir,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // A model worker left running keeps the child alive: fail instead of hanging.
  const HANG_DETECTOR_MS = 60_000;
  const timer = setTimeout(() => child.kill(), HANG_DETECTOR_MS);
  const { code, stdout } = await child.output();
  clearTimeout(timer);
  assert.equal(code, 0);
  const report = JSON.parse(new TextDecoder().decode(stdout).trim());
  // Five streams each, each holding its cache in the worker while it lives.
  assert.equal(report.plainBefore, 5, JSON.stringify(report));
  assert.equal(report.plainAfter, 0, `without a signal: ${JSON.stringify(report)}`);
  assert.equal(report.signalledBefore, 5, JSON.stringify(report));
  assert.equal(report.listenersBefore, 5, JSON.stringify(report));
  assert.equal(
    report.signalledAfter,
    0,
    `caches held through the signal: ${JSON.stringify(report)}`,
  );
  assert.equal(report.listenersAfter, 0, `listeners left on the signal: ${JSON.stringify(report)}`);
});
