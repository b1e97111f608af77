/**
 * A one-line progress bar on stderr for long CLI transfers. Shown only when stderr is a
 * terminal or `--progress` asks for it, so scripts piping the CLI get clean output.
 *
 * @module
 */
/** Minimum time between redraws: smooth to the eye, negligible cost per chunk. */
const REDRAW_INTERVAL_MS = 100;
/** Below this size a transfer is over before a bar is worth drawing. */
const MIN_BYTES_FOR_BAR = 8 * 1024 * 1024;
const BAR_WIDTH = 30;

/** A progress bar writing to stderr. */
export class ProgressBar {
  readonly #total: number | null;
  readonly #label: string;
  readonly #started = performance.now();
  #lastDraw = 0;
  /** Whether the line is drawn and not yet ended. */
  #open = false;
  readonly #encoder = new TextEncoder();

  /**
   * A bar for a transfer of `total` bytes.
   *
   * @param total Expected bytes, or `null` when unknown (a counter is shown instead).
   * @param label Word shown before the bar (`put`, `get`).
   */
  constructor(total: number | null, label: string) {
    this.#total = total;
    this.#label = label;
  }

  /**
   * A bar when one should be shown: `force` (from `--progress`) or stderr is a TTY and the
   * transfer is large; otherwise `null`.
   */
  static maybe(
    force: boolean | undefined,
    total: number | null,
    label: string,
  ): ProgressBar | null {
    if (force) return new ProgressBar(total, label);
    if (!Deno.stderr.isTerminal()) return null;
    if (total !== null && total < MIN_BYTES_FOR_BAR) return null;
    return new ProgressBar(total, label);
  }

  /** Report `done` bytes transferred (redraws at most every 100 ms). */
  update(done: number): void {
    const now = performance.now();
    if (now - this.#lastDraw < REDRAW_INTERVAL_MS) return;
    this.#lastDraw = now;
    this.#draw(done, false);
  }

  /** Draw the final state and end the line. */
  finish(done: number): void {
    this.#draw(done, true);
  }

  /**
   * End the line as it stands, when the transfer failed or stopped: the error printed next
   * starts on a line of its own, not after the bar. Nothing to do once finished.
   */
  stop(): void {
    if (!this.#open) return;
    this.#open = false;
    Deno.stderr.writeSync(this.#encoder.encode("\n"));
  }

  #draw(done: number, final: boolean): void {
    const seconds = Math.max((performance.now() - this.#started) / 1000, 1e-3);
    const rate = `${formatBytes(done / seconds)}/s`;
    let line: string;
    if (this.#total !== null && this.#total > 0) {
      const fraction = Math.min(1, done / this.#total);
      const filled = Math.round(fraction * BAR_WIDTH);
      const bar = "#".repeat(filled) + "-".repeat(BAR_WIDTH - filled);
      line = `${this.#label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
        `${formatBytes(done)} / ${formatBytes(this.#total)} ${rate}`;
    } else {
      line = `${this.#label} ${formatBytes(done)} ${rate}`;
    }
    Deno.stderr.writeSync(this.#encoder.encode(`\r${line}\x1b[K${final ? "\n" : ""}`));
    this.#open = !final;
  }
}

/** Human-readable byte count (binary units). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}
