/**
 * A small Prometheus metrics registry for `/metrics`: components register *collectors*
 * (functions that report their current values when scraped) rather than pushing every change,
 * so hot paths such as token generation count in plain fields and pay nothing per scrape.
 * Rendered in the Prometheus text exposition format 0.0.4.
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

/** One metric value. Samples with the same name must share `help` and `type`. */
export interface MetricSample {
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

/** Reports current values when `/metrics` is scraped. */
export type MetricsCollector = () => MetricSample[] | Promise<MetricSample[]>;

/** The content type of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Collects samples from registered collectors and renders them as Prometheus text. */
export class MetricsRegistry {
  #collectors: MetricsCollector[] = [];

  /** Add a collector; returns a function that removes it. */
  register(collector: MetricsCollector): () => void {
    this.#collectors.push(collector);
    return () => {
      const index = this.#collectors.indexOf(collector);
      if (index >= 0) this.#collectors.splice(index, 1);
    };
  }

  /** All current samples, collectors run concurrently. */
  async collect(): Promise<MetricSample[]> {
    const batches = await Promise.all(this.#collectors.map((collect) => collect()));
    return batches.flat();
  }

  /** The Prometheus text exposition of all current samples, grouped by metric name. */
  async render(): Promise<string> {
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
        text += `${name}${renderLabels(sample.labels)} ${sample.value}\n`;
      }
    }
    return text;
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

function escapeLabel(text: string): string {
  return escapeHelp(text).replaceAll('"', '\\"');
}
