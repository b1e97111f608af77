import assert from "node:assert/strict";
import {
  COLLECTOR_FAILURES_METRIC,
  type MetricSample,
  MetricsRegistry,
} from "../../server/metrics_registry.ts";
import { VeriflowError } from "../../protocols/errors.ts";

const sample = (name: string, value: number): MetricSample => ({
  name,
  help: `${name} help`,
  type: "gauge",
  value,
});

/** `name{labels} value` lines of a rendering, without the HELP/TYPE comments. */
function seriesOf(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

Deno.test("a scrape serves every collector that answers when one hangs and another throws, and counts each by name and reason", async () => {
  const metrics = new MetricsRegistry({ collectorTimeoutMs: 20 });
  metrics.register(() => [sample("ok_one", 1)], "one");
  // Never answers: a wedged actor. Its deadline, not its answer, ends the wait.
  metrics.register(() => new Promise<MetricSample[]>(() => {}), "validator");
  // What an actor ask past its own timeout throws.
  metrics.register(() => {
    throw new VeriflowError("ask_timeout", "no reply from node/network within 1000 ms");
  }, "network");
  metrics.register(() => Promise.reject(new Error("disk gone")), "storage");
  metrics.register(() => Promise.resolve([sample("ok_two", 2)]), "two");

  const first = seriesOf(await metrics.render());
  assert.deepEqual(
    first.sort(),
    [
      "ok_one 1",
      "ok_two 2",
      `${COLLECTOR_FAILURES_METRIC}{collector="validator",reason="timeout"} 1`,
      `${COLLECTOR_FAILURES_METRIC}{collector="network",reason="timeout"} 1`,
      `${COLLECTOR_FAILURES_METRIC}{collector="storage",reason="error"} 1`,
    ].sort(),
  );
  const second = seriesOf(await metrics.render());
  assert.ok(
    second.includes(`${COLLECTOR_FAILURES_METRIC}{collector="validator",reason="timeout"} 2`),
  );
});

Deno.test("a collector is named by its function when registered without a name", async () => {
  const metrics = new MetricsRegistry();
  const inference = () => Promise.reject(new Error("down"));
  metrics.register(inference);
  assert.match(await metrics.render(), /\{collector="inference",reason="error"\} 1$/m);
});
