/**
 * A small Prometheus metrics registry for `/metrics`: components register *collectors*
 * (functions that report their current values when scraped) rather than pushing every change,
 * so hot paths such as token generation count in plain fields and pay nothing per scrape.
 * Rendered in the Prometheus text exposition format 0.0.4.
 *
 * A scrape never fails because one source is slow or broken: each collector runs with a
 * deadline (`collectorTimeoutMs`), and one that throws or misses it is left out of that scrape
 * while the others are served; the registry counts it in
 * `veriflow_metrics_collector_failures_total{collector, reason}` (`reason` `timeout` or
 * `error`), so a gap in a series comes with its cause.
 *
 * Scrapes under way at once share one collection and get the same text
 * ({@link MetricsRegistry.render}): each collection asks the node's actors, and a flood of scrapes
 * asked them once per request (review s71). A scrape that comes after the shared one ended
 * collects afresh.
 *
 * A counter never goes down while the process runs, whatever its source does. The inference
 * and validator actors' counts are kept by the node across their restarts
 * (`node/_node_children.ts`), and a router's job counts keep those of closed worker connections
 * (`NetworkInferencePort.stats`), so neither drops; the prover's, the storage's and the network's
 * counts still live in their actors and start again from 0 when a supervisor restarts one.
 * Prometheus reads any drop as a reset of the process and `rate()` books what is left as new work,
 * so the registry holds each counter series at its highest value through a drop and adds the
 * source's increases from there on (a drop to 400 from 1000, then 450: 1000, then 1050). For those
 * sources, what was counted after the last scrape and before a restart is still lost: no scrape
 * saw it.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics_registry.ts";
 * const metrics = new MetricsRegistry();
 * let served = 0;
 * metrics.register(() => [{ name: "app_served_total", help: "Requests served.", type: "counter", value: served }]);
 * console.log(await metrics.render());
 * ```
 *
 * @module
 */
import { HIDDEN } from "../node/log_format.ts";
import { joinsWord } from "../node/word_joiners.ts";

/** One counter or gauge value. Samples with the same name must share `help` and `type`. */
export interface ScalarSample {
  /** Metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`). */
  name: string;
  /** One-line description. */
  help: string;
  /** Prometheus metric type. */
  type: "counter" | "gauge";
  /** Value. */
  value: number;
  /** Labels of this series. */
  labels?: Readonly<Record<string, string>>;
}

/**
 * One histogram: cumulative counts per upper bound, rendered as `NAME_bucket{le="…"}` series
 * (with `le="+Inf"` = `count`), `NAME_sum` and `NAME_count`.
 */
export interface HistogramSample {
  /** Metric name (without `_bucket`/`_sum`/`_count`). */
  name: string;
  /** One-line description. */
  help: string;
  /** Prometheus metric type. */
  type: "histogram";
  /** Upper bounds of the buckets, ascending (`+Inf` is implied). */
  bounds: readonly number[];
  /** Observations ≤ each bound (cumulative), one per bound. */
  cumulative: readonly number[];
  /** Sum of all observations. */
  sum: number;
  /** Number of observations. */
  count: number;
  /** Labels of this series. */
  labels?: Readonly<Record<string, string>>;
}

/** One metric sample. Samples with the same name must share `help` and `type`. */
export type MetricSample = ScalarSample | HistogramSample;

/**
 * A histogram to observe into: counting costs one bucket search per observation, and a scrape
 * reads it with {@link Histogram.sample}.
 *
 * @example
 * ```ts
 * import { Histogram } from "./metrics_registry.ts";
 * const ttft = new Histogram([0.01, 0.1, 1]);
 * ttft.observe(0.05);
 * ttft.sample("app_ttft_seconds", "Time to first token.").count; // 1
 * ```
 */
export class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  /**
   * An empty histogram.
   * @param bounds Upper bounds of the buckets, ascending.
   */
  constructor(bounds: readonly number[]) {
    if (bounds.some((b, i) => i > 0 && b <= bounds[i - 1])) {
      throw new RangeError("histogram bounds must ascend");
    }
    this.#bounds = [...bounds];
    this.#counts = bounds.map(() => 0);
  }

  /** Count one observation. */
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const i = this.#bounds.findIndex((bound) => value <= bound);
    if (i >= 0) this.#counts[i]++;
    this.#sum += value;
    this.#count++;
  }

  /** Observations so far. */
  get count(): number {
    return this.#count;
  }

  /** The histogram as a sample named `name`. */
  sample(name: string, help: string, labels?: Record<string, string>): HistogramSample {
    let running = 0;
    const cumulative = this.#counts.map((c) => (running += c));
    return {
      name,
      help,
      type: "histogram",
      bounds: this.#bounds,
      cumulative,
      sum: this.#sum,
      count: this.#count,
      labels,
    };
  }
}

/** Reports current values when `/metrics` is scraped. */
export type MetricsCollector = () => MetricSample[] | Promise<MetricSample[]>;

/** The content type of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Default deadline of one collector in a scrape: collectors answer from memory in microseconds,
 * so 2 s only ever cuts off a wedged source, and keeps a scrape well inside Prometheus' default
 * 10 s `scrape_timeout` even when several sources are wedged at once (they run concurrently).
 */
export const DEFAULT_COLLECTOR_TIMEOUT_MS = 2_000;

/** The registry's own series: collectors left out of a scrape, by collector and reason. */
export const COLLECTOR_FAILURES_METRIC = "veriflow_metrics_collector_failures_total";

/** Options of {@link MetricsRegistry}. */
export interface MetricsRegistryOptions {
  /**
   * Milliseconds one collector may take in a scrape before it is left out of that scrape and
   * counted as a `timeout`; default {@link DEFAULT_COLLECTOR_TIMEOUT_MS}.
   */
  collectorTimeoutMs?: number;
}

/** Why a collector was left out of a scrape. */
type FailureReason = "timeout" | "error";

/** Collects samples from registered collectors and renders them as Prometheus text. */
export class MetricsRegistry {
  #collectors: { name: string; collect: MetricsCollector }[] = [];
  #timeoutMs: number;
  /** Failures by `collector\0reason`. */
  #failures = new Map<string, number>();
  /**
   * Per counter series (name and labels): the source's last value, and what is added to it so
   * that the series never goes down (see the module doc).
   */
  #counters = new Map<string, { last: number; offset: number }>();
  /** The collection under way, shared by every scrape that comes while it runs. */
  #collecting?: Promise<MetricSample[]>;
  /** The rendering under way, shared likewise. */
  #rendering?: Promise<string>;

  /** An empty registry. */
  constructor(options: MetricsRegistryOptions = {}) {
    this.#timeoutMs = options.collectorTimeoutMs ?? DEFAULT_COLLECTOR_TIMEOUT_MS;
  }

  /**
   * Add a collector; returns a function that removes it.
   *
   * @param collector Reports the current samples.
   * @param name Names it in the failure counts; default the function's own name.
   */
  register(collector: MetricsCollector, name?: string): () => void {
    const entry = { name: name ?? (collector.name || "anonymous"), collect: collector };
    this.#collectors.push(entry);
    return () => {
      const index = this.#collectors.indexOf(entry);
      if (index >= 0) this.#collectors.splice(index, 1);
    };
  }

  /**
   * All current samples, collectors run concurrently; one that throws or misses its deadline
   * is left out and counted (see the module doc), never failing the rest. Calls made while one
   * runs share it (see the module doc).
   */
  collect(): Promise<MetricSample[]> {
    this.#collecting ??= this.#collect().finally(() => (this.#collecting = undefined));
    return this.#collecting;
  }

  async #collect(): Promise<MetricSample[]> {
    const batches = await Promise.all(this.#collectors.map((entry) => this.#run(entry)));
    return [...batches.flat().map((sample) => this.#monotonic(sample)), ...this.#failureSamples()];
  }

  /** `sample`, a counter held through a drop of its source (see the module doc). */
  #monotonic(sample: MetricSample): MetricSample {
    if (sample.type !== "counter" || !Number.isFinite(sample.value)) return sample;
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels ?? {}).sort())}`;
    const seen = this.#counters.get(key);
    if (seen === undefined) {
      this.#counters.set(key, { last: sample.value, offset: 0 });
      return sample;
    }
    // A drop keeps the series where it was: the difference joins the offset.
    if (sample.value < seen.last) seen.offset += seen.last - sample.value;
    seen.last = sample.value;
    return seen.offset === 0 ? sample : { ...sample, value: sample.value + seen.offset };
  }

  /**
   * The Prometheus text exposition of all current samples, grouped by metric name. Calls made
   * while one runs share it and get the same text (see the module doc).
   */
  render(): Promise<string> {
    this.#rendering ??= this.#render().finally(() => (this.#rendering = undefined));
    return this.#rendering;
  }

  async #render(): Promise<string> {
    const byName = new Map<string, MetricSample[]>();
    for (const sample of await this.collect()) {
      if (!METRIC_NAME.test(sample.name)) throw new RangeError(`bad metric name ${sample.name}`);
      const group = byName.get(sample.name);
      if (group) group.push(sample);
      else byName.set(sample.name, [sample]);
    }
    let text = "";
    for (const [name, samples] of byName) {
      text += `# HELP ${name} ${escapeHelp(samples[0].help)}\n# TYPE ${name} ${samples[0].type}\n`;
      for (const sample of samples) {
        if (sample.type !== "histogram") {
          text += `${name}${renderLabels(sample.labels)} ${sample.value}\n`;
          continue;
        }
        sample.bounds.forEach((bound, i) => {
          const le = renderLabels({ ...sample.labels, le: String(bound) });
          text += `${name}_bucket${le} ${sample.cumulative[i]}\n`;
        });
        text += `${name}_bucket${renderLabels({ ...sample.labels, le: "+Inf" })} ${sample.count}\n`;
        text += `${name}_sum${renderLabels(sample.labels)} ${sample.sum}\n`;
        text += `${name}_count${renderLabels(sample.labels)} ${sample.count}\n`;
      }
    }
    return text;
  }

  /** One collector's samples, or none (counted) if it throws or misses the deadline. */
  async #run(entry: { name: string; collect: MetricsCollector }): Promise<MetricSample[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#timeoutMs);
    });
    try {
      const result = await Promise.race([Promise.resolve().then(entry.collect), deadline]);
      if (result !== "timeout") return result;
      this.#count(entry.name, "timeout");
    } catch (error) {
      // An ask that timed out inside the collector is the same story as our own deadline.
      const code = (error as { code?: unknown })?.code;
      this.#count(
        entry.name,
        typeof code === "string" && code.endsWith("timeout") ? "timeout" : "error",
      );
    } finally {
      clearTimeout(timer);
    }
    return [];
  }

  #count(collector: string, reason: FailureReason): void {
    const key = `${collector}\0${reason}`;
    this.#failures.set(key, (this.#failures.get(key) ?? 0) + 1);
  }

  #failureSamples(): MetricSample[] {
    return [...this.#failures].map(([key, value]) => {
      const [collector, reason] = key.split("\0");
      return {
        name: COLLECTOR_FAILURES_METRIC,
        help: "Collectors left out of a scrape (it served the rest), by collector and reason.",
        type: "counter",
        value,
        labels: { collector, reason },
      };
    });
  }
}

function renderLabels(labels: Readonly<Record<string, string>> | undefined): string {
  if (!labels) return "";
  const parts = Object.entries(labels).map(([key, value]) => `${key}="${escapeLabel(value)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/**
 * Characters a label value must not carry as they are, past the newline the format escapes
 * itself: the other C0 controls, DEL and the C1 controls (a CR rewrites the line an operator's
 * `curl …/metrics` shows, ESC recolours or clears the terminal, and the exposition parsers read a
 * CR as a line's end), the Unicode line separators, and the bidirectional and zero-width marks
 * (they reorder or hide what is shown; but for the joiners inside a word, `node/word_joiners.ts`), and
 * lone surrogates: past the C0 controls, the log's own list (`node/log_format.ts`'s `HIDDEN`), so
 * the two cannot drift. A label can carry a peer's words (review s76 F1: a hello's version did);
 * this holds whatever else comes to carry them.
 */
const LABEL_HIDDEN = new RegExp(`[\\x00-\\x09\\x0b-\\x1f${HIDDEN}]`, "gu");

/**
 * `text` as a label value: its backslashes doubled, so a `\u200c` it holds as text is not the
 * escape of a real U+200C (review s77 vstr F5: `"a\u200cb"` and `"a\\u200cb"` were written
 * alike, one series twice); then each {@link LABEL_HIDDEN} character but the joiners inside a
 * word ({@link joinsWord}) written as the text `\xNN` or `\uNNNN`; then, for the format (it knows
 * only `\\`, `\"` and `\n`, and a parser such as Prometheus' own refuses any other escape),
 * `\`, newline and `"` escaped.
 */
function escapeLabel(text: string): string {
  const shown = text.replaceAll("\\", "\\\\").replace(LABEL_HIDDEN, (char, at, whole) => {
    if (joinsWord(whole, at)) return char;
    const code = char.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
  return escapeHelp(shown).replaceAll('"', '\\"');
}
