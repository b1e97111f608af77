/**
 * Review s54 (operator): a counter on `/metrics` never goes down while the node runs. A router's
 * inference counters are sums over the worker connections open now (`NetworkInferencePort`),
 * and an actor's counters start again from 0 when its supervisor restarts it: rendered as they
 * are, a drop from 1000 to 400 reads to Prometheus as a reset, and `rate()` books the 400 left
 * as new work — a spike of work nobody did.
 */
import assert from "node:assert/strict";
import { type MetricSample, MetricsRegistry } from "../../server/metrics_registry.ts";

/** The value of the series `line` starts with, in a rendering. */
function valueOf(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  assert.ok(line !== undefined, `${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
}

Deno.test("a counter whose source drops (a worker disconnected, an actor restarted) is held, then counts on from there", async () => {
  const metrics = new MetricsRegistry();
  // Jobs finished, summed over the workers connected now: A 600 + B 400, then A leaves.
  const finished = [1000, 400, 450, 0, 5];
  const gauge = [3, 1, 2, 0, 1];
  let scrape = 0;
  metrics.register((): MetricSample[] => [
    {
      name: "app_jobs_total",
      help: "Jobs.",
      type: "counter",
      value: finished[scrape],
      labels: { state: "finished" },
    },
    { name: "app_jobs_running", help: "Running now.", type: "gauge", value: gauge[scrape] },
  ], "inference");
  const seen: number[] = [];
  const gauges: number[] = [];
  for (; scrape < finished.length; scrape++) {
    const text = await metrics.render();
    seen.push(valueOf(text, 'app_jobs_total{state="finished"}'));
    gauges.push(valueOf(text, "app_jobs_running"));
  }
  // Held at 1000 through the drop; then B's 50 more; then a reset to 0 and 5 more.
  assert.deepEqual(seen, [1000, 1000, 1050, 1050, 1055]);
  // Gauges go where their source goes.
  assert.deepEqual(gauges, gauge);
});

Deno.test("counters are held per series: a drop in one label set does not move another", async () => {
  const metrics = new MetricsRegistry();
  const values = [[5, 7], [2, 9]];
  let scrape = 0;
  metrics.register((): MetricSample[] =>
    ["a", "b"].map((actor, i) => ({
      name: "app_restarts_total",
      help: "Restarts.",
      type: "counter" as const,
      value: values[scrape][i],
      labels: { actor },
    }))
  );
  await metrics.render();
  scrape = 1;
  const text = await metrics.render();
  assert.equal(valueOf(text, 'app_restarts_total{actor="a"}'), 5);
  assert.equal(valueOf(text, 'app_restarts_total{actor="b"}'), 9);
});
