import assert from "node:assert/strict";
import { renderLossChart, renderSeries, resampleIndices } from "../../training/loss_chart.ts";

Deno.test("a falling series draws falling bars, the highest point a full column", () => {
  const lines = renderSeries({ label: "held-out", values: [8, 6, 4, 3] }, {
    height: 4,
    width: 4,
  });
  assert.equal(lines[0], "held-out: 8.00 → 3.00 (4 points)");
  assert.equal(lines.length, 1 + 4);
  const bars = lines.slice(1).map((l) => l.slice(l.indexOf("┤") + 1).padEnd(4));
  // Column heights in eighths, read back from the glyphs: strictly falling left to right.
  const eighths = " ▁▂▃▄▅▆▇█";
  const height = (col: number) =>
    bars.reduce((sum, row) => sum + Math.max(0, eighths.indexOf(row[col])), 0);
  const heights = [0, 1, 2, 3].map(height);
  assert.deepEqual([...heights].sort((a, b) => b - a), heights);
  assert.ok(heights[0] > heights[1] && heights[2] > heights[3], heights.join(","));
  // The maximum fills every row of its column; the minimum still shows a bar.
  assert.ok(bars.every((row) => row[0] === "█"), bars.join("\n"));
  assert.ok(heights[3] >= 1);
});

Deno.test("labels carry the range; an empty series says so", () => {
  const lines = renderSeries({ label: "x", values: [2, 1] }, { height: 3, width: 10 });
  assert.ok(lines[1].startsWith("2.00 ┤"), lines[1]);
  assert.ok(lines[3].startsWith("0.90 ┤"), lines[3]);
  assert.deepEqual(renderSeries({ label: "x", values: [] }, { height: 2 })[0], "x: no points yet");
});

Deno.test("more points than columns are resampled, keeping the first and the last", () => {
  assert.deepEqual(resampleIndices(3, 10), [0, 1, 2]);
  const picks = resampleIndices(100, 5);
  assert.equal(picks.length, 5);
  assert.equal(picks[0], 0);
  assert.equal(picks.at(-1), 99);
  const lines = renderSeries(
    { label: "y", values: Array.from({ length: 100 }, (_, i) => 100 - i) },
    {
      height: 2,
      width: 5,
    },
  );
  for (const line of lines.slice(1)) assert.ok(line.split("┤")[1].length <= 5, line);
});

Deno.test("several series are drawn one under the other", () => {
  const lines = renderLossChart([
    { label: "a", values: [3, 2] },
    { label: "b", values: [1] },
  ], { height: 2, width: 8 });
  assert.equal(lines.length, 2 * (1 + 2));
  assert.ok(lines[0].startsWith("a: "));
  assert.ok(lines[3].startsWith("b: "));
});
