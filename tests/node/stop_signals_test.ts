import assert from "node:assert/strict";
import { DUPLICATE_SIGNAL_MS, stopSignalNames, StopSignals } from "../../node/stop_signals.ts";

Deno.test("the first stop signal stops gracefully, a forwarded copy of it is ignored, a second one forces", () => {
  let now = 1_000;
  const signals = new StopSignals(() => now);
  assert.equal(signals.stopping, false);
  assert.equal(signals.next(), "stop");
  assert.equal(signals.stopping, true);
  // `deno task` forwards the terminal's SIGINT, which the node also gets directly.
  now += 2;
  assert.equal(signals.next(), "ignore");
  now += DUPLICATE_SIGNAL_MS;
  assert.equal(signals.next(), "force");
  now += DUPLICATE_SIGNAL_MS;
  assert.equal(signals.next(), "force");
});

Deno.test("the stop signals are SIGINT and SIGTERM, and on Windows (where registering SIGTERM throws) SIGINT and SIGBREAK", () => {
  assert.deepEqual(stopSignalNames("linux"), ["SIGINT", "SIGTERM"]);
  assert.deepEqual(stopSignalNames("darwin"), ["SIGINT", "SIGTERM"]);
  assert.deepEqual(stopSignalNames("windows"), ["SIGINT", "SIGBREAK"]);
});
