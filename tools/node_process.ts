/**
 * A Veriflow node in its own process, for multi-process tests and benchmarks: `cli.ts start`
 * (or another entry script) with its log collected line by line, the ports it printed, and its
 * `/metrics`. The node stops when this process goes, however it goes (`_stop_with_parent.ts`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/**
 * A file path, not the URL's `pathname`: that is percent-encoded, and in a checkout under a
 * folder with a space (`My%20Projects`) it named no file, so no node started.
 */
const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
/**
 * Preloaded into every node: it stops when the stdin pipe this process holds closes, that is when
 * this process exits, SIGKILLed included (see the module).
 */
const STOP_WITH_PARENT = fileURLToPath(new URL("./_stop_with_parent.ts", import.meta.url));
/** The repository root, where every node of the tests and benches is started. */
const REPOSITORY = fileURLToPath(new URL("..", import.meta.url));
/** How long a node may take to print a line we wait for (a model load on a busy 2-core box). */
const LINE_TIMEOUT_MS = 60_000;
/** `/proc` reports CPU time in USER_HZ ticks, 100 per second on every Linux ABI Deno runs on. */
const CLOCK_TICKS_PER_S = 100;
const MS_PER_S = 1000;

/** A running node process. */
export class NodeProcess {
  readonly name: string;
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #waiters = new Set<() => void>();
  readonly exited: Promise<Deno.CommandStatus>;
  #ended = false;

  private constructor(name: string, child: Deno.ChildProcess) {
    this.name = name;
    this.#child = child;
    // The stdin pipe is held open for the node's life (it stops when it closes: see
    // STOP_WITH_PARENT), then closed, so no test sees it leaked.
    this.exited = child.status.then(async (status) => {
      await child.stdin.close().catch(() => {});
      return status;
    });
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (
        const line of stream.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())
      ) {
        this.lines.push(line);
        if (Deno.env.get("VERIFLOW_TEST_LOG")) console.error(`[${name}] ${line}`);
        for (const wake of this.#waiters) wake();
      }
    };
    Promise.all([pump(child.stdout), pump(child.stderr)]).finally(() => {
      this.#ended = true;
      for (const wake of this.#waiters) wake();
    });
  }

  /** The child's process id (of `taskset`'s exec'd program when pinned: the same process). */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * CPU seconds (user + system) this process has used so far, all threads, from
   * `/proc/PID/stat` (Linux; NaN elsewhere).
   */
  async cpuSeconds(): Promise<number> {
    try {
      const stat = await Deno.readTextFile(`/proc/${this.pid}/stat`);
      // Fields after the ")" that closes the command name: utime is 14th, stime 15th overall.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
    } catch {
      return NaN;
    }
  }

  /** Start `cli.ts start ARGS` (or `script ARGS` when given), pinned to `options.cpus` if set. */
  static start(
    name: string,
    args: string[],
    script = CLI,
    options: { cpus?: string } = {},
  ): NodeProcess {
    // The node as `deno task start` runs it: a served request's signal aborts only when its
    // client goes away (`--unstable-no-legacy-abort`).
    const deno = [
      "run",
      "--unstable-no-legacy-abort",
      "-A",
      `--preload=${STOP_WITH_PARENT}`,
      script,
      ...(script === CLI ? ["start"] : []),
      ...args,
    ];
    // `cpus` (a taskset list, "0" or "0-1") pins the process and all its threads.
    const [command, commandArgs] = options.cpus === undefined
      ? [Deno.execPath(), deno]
      : ["taskset", ["-c", options.cpus, Deno.execPath(), ...deno]];
    const child = new Deno.Command(command, {
      args: commandArgs,
      // The repository, not the process's working directory of the moment: test modules run side
      // by side in one process (`deno test --parallel`) and one may have moved into a temporary
      // directory it is about to delete (a node spawned then failed "Failed getting cwd", CI s76).
      cwd: REPOSITORY,
      stdout: "piped",
      stderr: "piped",
      // Never written to: its end-of-file tells the node that this process is gone.
      stdin: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    return new NodeProcess(name, child);
  }

  /** The first log line matching `pattern` (waiting for it); its match. */
  async waitForLine(pattern: RegExp, timeoutMs = LINE_TIMEOUT_MS): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.lines.length; seen++) {
        const match = this.lines[seen].match(pattern);
        if (match) return match;
      }
      if (this.#ended) {
        throw new Error(`${this.name} exited before printing ${pattern}:\n${this.tail()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name} did not print ${pattern}:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const wake = () => done();
        this.#waiters.add(wake);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.add(() => this.#waiters.delete(wake));
      });
    }
  }

  /** The base URL of its HTTP API. */
  async httpUrl(): Promise<string> {
    return (await this.waitForLine(/^HTTP API\s+(http:\/\/\S+)/))[1];
  }

  /** The port it accepts peers on. */
  async p2pPort(): Promise<number> {
    return Number((await this.waitForLine(/^peer listener\s+\S+:(\d+)$/))[1]);
  }

  /**
   * Its `/metrics` as name{labels} → value. A scrape over this address's allowance (429, a test
   * polling in a loop: `server/health_routes.ts`) is retried after its `Retry-After`.
   */
  async metrics(): Promise<Map<string, number>> {
    let response = await fetch(`${await this.httpUrl()}/metrics`);
    while (response.status === 429) {
      await response.body?.cancel();
      const retryAfterS = Number(response.headers.get("retry-after") ?? 1);
      await new Promise((resolve) => setTimeout(resolve, retryAfterS * MS_PER_S));
      response = await fetch(`${await this.httpUrl()}/metrics`);
    }
    const text = await response.text();
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue;
      const at = line.lastIndexOf(" ");
      out.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return out;
  }

  /** Send a signal (SIGKILL: no goodbye at all). */
  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<void> {
    this.kill("SIGTERM");
    await this.exited;
  }

  /** The last lines of its log (for failure messages). */
  tail(n = 40): string {
    return this.lines.slice(-n).join("\n");
  }
}

/** Splits a text stream into lines (without their `\n` / `\r\n`). */
export class TextLineStream extends TransformStream<string, string> {
  constructor() {
    let rest = "";
    super({
      transform(chunk, controller) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        for (const line of parts) controller.enqueue(line.replace(/\r$/, ""));
      },
      flush(controller) {
        if (rest !== "") controller.enqueue(rest);
      },
    });
  }
}
