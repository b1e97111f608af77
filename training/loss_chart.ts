/**
 * A loss curve drawn in the terminal with Unicode block characters: each series is a bar chart,
 * one column per point (resampled when there are more points than columns), bar heights in
 * eighths of a row (`▁▂▃▄▅▆▇█`), the value range labelled on the left. Pure: it returns lines,
 * and `cli.ts train` decides whether to redraw them in place (a TTY) or not at all.
 *
 * @module
 */

/** Partial blocks, one to eight eighths of a cell high. */
const EIGHTHS = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"] as const;
/** Sub-cell steps per row (the number of partial block glyphs). */
const STEPS_PER_ROW = EIGHTHS.length;
/**
 * Fraction of the range left below the smallest value, so the lowest point still shows a
 * bar and a falling curve does not end at an empty column.
 */
const FLOOR_MARGIN = 0.1;
/** Widest column a point gets when there are few points (wider bars read as a curve less). */
const MAX_COLUMN_WIDTH = 3;

/** One curve. */
export interface ChartSeries {
  /** Name shown in the header, e.g. `held-out bits/byte`. */
  label: string;
  /** The points, oldest first. */
  values: readonly number[];
}

/** Options of {@link renderLossChart}. */
export interface LossChartOptions {
  /** Rows per series (default 6). */
  height?: number;
  /** Columns for the bars, not counting the axis labels (default 60). */
  width?: number;
  /** Decimals of the labels (default 2). */
  digits?: number;
}

/**
 * Indices of at most `width` points of `count`, evenly spread, always keeping the first and the
 * last.
 */
export function resampleIndices(count: number, width: number): number[] {
  if (count <= width) return Array.from({ length: count }, (_, i) => i);
  if (width <= 1) return [count - 1];
  return Array.from({ length: width }, (_, i) => Math.round((i * (count - 1)) / (width - 1)));
}

/** The bar chart of one series as `height` lines (top first), plus a header line. */
export function renderSeries(series: ChartSeries, options: LossChartOptions = {}): string[] {
  const height = Math.max(1, options.height ?? 6);
  const width = Math.max(1, options.width ?? 60);
  const digits = options.digits ?? 2;
  const values = series.values.filter(Number.isFinite);
  const first = values[0];
  const last = values.at(-1);
  const header = values.length === 0
    ? `${series.label}: no points yet`
    : `${series.label}: ${first!.toFixed(digits)} → ${last!.toFixed(digits)}` +
      ` (${values.length} point${values.length === 1 ? "" : "s"})`;
  const max = values.length ? Math.max(...values) : 1;
  const min = values.length ? Math.min(...values) : 0;
  const span = max - min || Math.abs(max) || 1;
  const lo = min - span * FLOOR_MARGIN;
  const hi = max;
  const picks = resampleIndices(values.length, width).map((i) => values[i]);
  const columnWidth = picks.length === 0
    ? 1
    : Math.max(1, Math.min(MAX_COLUMN_WIDTH, Math.floor(width / picks.length)));
  // Bar heights in eighths of a row.
  const levels = picks.map((v) =>
    Math.max(1, Math.round(((v - lo) / (hi - lo || 1)) * height * STEPS_PER_ROW))
  );
  const hiLabel = hi.toFixed(digits);
  const loLabel = lo.toFixed(digits);
  const labelWidth = Math.max(hiLabel.length, loLabel.length);
  const lines = [header];
  for (let row = height - 1; row >= 0; row--) {
    const label = row === height - 1 ? hiLabel : row === 0 ? loLabel : "";
    let bars = "";
    for (const level of levels) {
      const inRow = level - row * STEPS_PER_ROW;
      const glyph = inRow <= 0 ? " " : EIGHTHS[Math.min(inRow, STEPS_PER_ROW) - 1];
      bars += glyph.repeat(columnWidth);
    }
    lines.push(`${label.padStart(labelWidth)} ┤${bars.trimEnd()}`);
  }
  return lines;
}

/** Every series' chart, one under the other. */
export function renderLossChart(
  series: readonly ChartSeries[],
  options: LossChartOptions = {},
): string[] {
  return series.flatMap((s) => renderSeries(s, options));
}
