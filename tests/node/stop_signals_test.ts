import assert from "node:assert/strict";
import { DUPLICATE_SIGNAL_MS, StopSignals } from "../../node/stop_signals.ts";

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
