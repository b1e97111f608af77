/**
 * Label values on `/metrics` (`server/metrics_registry.ts`) carry no control, line-separator,
 * bidi or zero-width character as it is (review s76 F1: a peer's hello version put CR, ESC, U+2028
 * and U+202E into `veriflow_peer_info`; the project's own exposition checker refused the page, and
 * `curl …/metrics` in a terminal ran the peer's escape sequences).
 */
import assert from "node:assert/strict";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { parsePrometheusText } from "./_prometheus_text.ts";

/** One of each kind a label must not write raw, between words so their places show. */
const HOSTILE = 'a"} 1\r\\b\x00c\x1b[31md\x7fe\x9bf\u2028g\u202eh\u2066i\u200bj\ufeffk\tl\nm';

Deno.test("a label value's control, separator, bidi and zero-width characters are written escaped, and the page parses", async () => {
  const metrics = new MetricsRegistry();
  metrics.register(() => [{
    name: "test_info",
    help: "A series whose label holds every kind of hidden character.",
    type: "gauge",
    value: 1,
    labels: { said: HOSTILE },
  }]);
  const page = await metrics.render();
  const line = page.split("\n").find((l) => l.startsWith("test_info{"));
  assert.ok(line !== undefined, page);
  // Nothing below the space but the line's own end, no DEL or C1, no separator, bidi or zero-width.
  assert.doesNotMatch(
    line,
    // deno-lint-ignore no-control-regex -- the controls a hostile peer sends
    /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u,
  );
  const series = parsePrometheusText(page).filter((s) => s.name === "test_info");
  assert.equal(series.length, 1);
  // Shown as text: each character's code after an escaped backslash, a backslash of the text
  // doubled first (so it is no escape's: review s77 vstr F5); the format's own escapes (`\\`,
  // `\"`, `\n`) as before.
  assert.equal(
    series[0].labels.said,
    'a\\"} 1\\\\x0d\\\\\\\\b\\\\x00c\\\\x1b[31md\\\\x7fe\\\\x9bf\\\\u2028g\\\\u202eh\\\\u2066i' +
      "\\\\u200bj\\\\ufeffk\\\\x09l\\nm",
  );
});
