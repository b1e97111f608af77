/**
 * A strict reader of the Prometheus text format 0.0.4, as `promtool check metrics` reads it:
 * every line is a `# HELP`, a `# TYPE` or a sample; a family's TYPE comes before its samples;
 * no series twice; a histogram's buckets are cumulative, end at `+Inf` equal to `_count`.
 * Throws naming the line on the first problem.
 */

/** One parsed series: name, labels, value. */
export interface Series {
  /** The sample's name (`x_bucket`, `x_sum`…). */
  name: string;
  /** Labels. */
  labels: Record<string, string>;
  /** Value. */
  value: number;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

/** Parse and check `text`; returns every series. */
export function parsePrometheusText(text: string): Series[] {
  const types = new Map<string, string>();
  const seen = new Set<string>();
  const series: Series[] = [];
  const lines = text.split("\n");
  if (lines.at(-1) !== "") throw new Error("the exposition must end with a newline");
  lines.slice(0, -1).forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith("# HELP ")) {
      if (!new RegExp(`^# HELP ${NAME} `).test(line)) throw new Error(`bad HELP, ${where}`);
      return;
    }
    if (line.startsWith("# TYPE ")) {
      const m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)
        .exec(line);
      if (!m) throw new Error(`bad TYPE, ${where}`);
      if (types.has(m[1])) throw new Error(`TYPE given twice, ${where}`);
      types.set(m[1], m[2]);
      return;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample, ${where}`);
    const [, name, labelText = "", valueText] = m;
    const value = valueText === "+Inf"
      ? Infinity
      : valueText === "-Inf"
      ? -Infinity
      : Number(valueText);
    if (Number.isNaN(value) && valueText !== "NaN") throw new Error(`bad value, ${where}`);
    const labels: Record<string, string> = {};
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < labelText.length) {
      const l = LABEL.exec(labelText);
      if (!l) throw new Error(`bad labels, ${where}`);
      labels[l[1]] = l[2];
    }
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    const type = types.get(family);
    if (type === undefined) throw new Error(`sample before its TYPE, ${where}`);
    if (family !== name && type !== "histogram" && type !== "summary") {
      throw new Error(`suffix on a ${type}, ${where}`);
    }
    if (type === "histogram" && name.endsWith("_bucket") && labels.le === undefined) {
      throw new Error(`bucket without le, ${where}`);
    }
    if (type === "counter" && value < 0) throw new Error(`negative counter, ${where}`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`series given twice, ${where}`);
    seen.add(key);
    series.push({ name, labels, value });
  });
  // Histograms: cumulative buckets ending in +Inf = _count.
  for (const [family, type] of types) {
    if (type !== "histogram") continue;
    const groups = new Map<string, Series[]>();
    for (const s of series.filter((s) => s.name === `${family}_bucket`)) {
      const { le: _le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    for (const [key, buckets] of groups) {
      const les = buckets.map((b) => b.labels.le === "+Inf" ? Infinity : Number(b.labels.le));
      for (let i = 1; i < buckets.length; i++) {
        if (les[i] <= les[i - 1] || buckets[i].value < buckets[i - 1].value) {
          throw new Error(`${family}${key}: buckets not ascending and cumulative`);
        }
      }
      const count = series.find((s) =>
        s.name === `${family}_count` &&
        JSON.stringify(Object.entries(s.labels).sort()) === key
      );
      if (les.at(-1) !== Infinity || count === undefined || count.value !== buckets.at(-1)!.value) {
        throw new Error(`${family}${key}: +Inf bucket missing or not equal to _count`);
      }
    }
  }
  return series;
}

/** The value of the one series `name` with `labels` (a subset), or 0 when absent. */
export function valueOf(
  series: Series[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const found = series.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  if (found.length > 1) {
    throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length}`);
  }
  return found[0]?.value ?? 0;
}
