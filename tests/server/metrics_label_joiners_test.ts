/**
 * Label values on `/metrics` (`server/metrics_registry.ts`): ordinary writing that needs a
 * zero-width joiner or non-joiner inside a word (an emoji sequence, Persian, Sinhala, Hindi)
 * comes back as it was sent, and no two values are written alike (review s77 vstr F5: the
 * joiners came back as `\u200d` text, and `"a\u200cb"` and the text `a\u200cb` were one series
 * written twice, which the checker refuses).
 */
import assert from "node:assert/strict";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { parsePrometheusText } from "./_prometheus_text.ts";

/** The text format's unescaping, as a scraper reads a label value (`\\`, `\"`, `\n`). */
const unescape = (value: string) =>
  value.replace(/\\([\\"n])/g, (_, c: string) => (c === "n" ? "\n" : c));

/** One label value per kind, written and read back. */
async function roundTrip(values: readonly string[]): Promise<string[]> {
  const metrics = new MetricsRegistry();
  metrics.register(() =>
    values.map((model, i) => ({
      name: "test_model_info",
      help: "A label value as a scraper reads it.",
      type: "gauge" as const,
      value: 1,
      labels: { i: String(i), model },
    }))
  );
  return parsePrometheusText(await metrics.render())
    .filter((s) => s.name === "test_model_info")
    .sort((a, b) => Number(a.labels.i) - Number(b.labels.i))
    .map((s) => unescape(s.labels.model));
}

Deno.test("a label value's joiners inside words come back as they were sent", async () => {
  const words = [
    "coder-👩\u200d💻",
    "flag-🏳\ufe0f\u200d🌈",
    "می\u200cخواهم",
    "ශ්\u200dරී-lanka",
    "क्\u200dष",
    "modèle-ü-ñ",
  ];
  assert.deepEqual(await roundTrip(words), words);
});

Deno.test("a joiner that joins no word is written out", async () => {
  assert.deepEqual(
    await roundTrip(["\u200dx", "x\u200d", "a \u200cb", "a\u200d\u200db"]),
    ["\\u200dx", "x\\u200d", "a \\u200cb", "a\\u200d\\u200db"],
  );
});

Deno.test("two different values are never written as one: a backslash of the text is doubled", async () => {
  const values = ["a\u200c b", "a\\u200c b", "a\\b", "a\u202eb", "a\\u202eb"];
  const got = await roundTrip(values);
  assert.equal(new Set(got).size, values.length, got.join("\n"));
  assert.deepEqual(got, ["a\\u200c b", "a\\\\u200c b", "a\\\\b", "a\\u202eb", "a\\\\u202eb"]);
});
