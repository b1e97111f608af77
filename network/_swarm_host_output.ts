/**
 * What the swarm host's process prints, seen from Deno: its stdout and stderr pipes read line by
 * line (a line too long cut at {@link MAX_LINE_CHARS}, a line the node cannot take logged rather
 * than the end of the reading), its stderr and stray stdout lines written to the node's log a
 * bounded number at a time, and its last few stderr lines and error events kept for the message
 * of a start that failed.
 *
 * Owned and used by `swarm_host.ts` (`SwarmHost`) only, one per `SwarmHost` across the host's
 * restarts. Not part of the public API.
 *
 * @module
 */
import { LogLimiter } from "./log_limiter.ts";

/** How many of the host's last stderr lines (and error events) a failed start quotes. */
const LAST_LINES = 5;
/** How long an exited host's pipes may take to deliver their last lines. */
const LAST_LINES_WAIT_MS = 1_000;
/**
 * The host's stderr lines written to the node's log per {@link STDERR_WINDOW_MS}: room for a
 * burst of connections it closed for holding too much (each a line), not for a flood — a host
 * (or a library in it) printing in a loop wrote every line, as fast as the pipe went.
 */
const STDERR_LINES_PER_WINDOW = 100;
const STDERR_WINDOW_MS = 10_000;
/** The longest line taken from the host's pipes: the rest of a longer one is dropped. */
const MAX_LINE_CHARS = 4 * 1024;

/** The running swarm host's pipes, read to their end, and what they said. */
export class SwarmHostOutput {
  /** The host's stderr and stray stdout lines, a bounded number at a time. */
  readonly stderrLog: LogLimiter;
  /** The current host's last stderr lines and error events, for a failed start's message. */
  lastLines: string[] = [];
  /** The running host's pipes, read to their end. */
  #pipes: Promise<unknown> | undefined;

  /** @param log The node's log (`SwarmHostOptions.log`). */
  constructor(log: (line: string) => void) {
    this.stderrLog = new LogLimiter(log, {
      burst: STDERR_LINES_PER_WINDOW,
      windowMs: STDERR_WINDOW_MS,
    });
  }

  /**
   * Read a freshly started host's pipes to their end: each stdout line to `onStdout`, each
   * stderr line remembered and logged.
   */
  read(child: Deno.ChildProcess, onStdout: (line: string) => void): void {
    this.#pipes = Promise.all([
      this.#readLines(child.stdout, onStdout),
      this.#readLines(child.stderr, (line) => {
        this.remember(line);
        this.stderrLog.line("swarm host", `swarm host: ${line}`);
      }),
    ]);
  }

  /**
   * The pipes' last lines (the reason a start failed), unless something else (a process the host
   * started) holds them open.
   */
  async lastPipes(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#pipes,
      new Promise((resolve) => timer = setTimeout(resolve, LAST_LINES_WAIT_MS)),
    ]);
    clearTimeout(timer);
  }

  /** Keep `line` among the last ones, for a failed start's message. */
  remember(line: string): void {
    this.lastLines.push(line);
    if (this.lastLines.length > LAST_LINES) this.lastLines.shift();
  }

  async #readLines(stream: ReadableStream<Uint8Array>, handle: (line: string) => void) {
    let buffered = "";
    /** Within a line too long, its start already handed on: the rest is dropped. */
    let cut = false;
    // One line the node cannot take (an event with a field of the wrong type: `{"topic": 7}`
    // threw in `SwarmHost.#onEvent`) is logged, not the end of the reading: a throw here ended the loop
    // below for good, and every later event of the host (its answers to joins, its pongs) went
    // unread, as with the stray `null` of review s47 (review s54).
    const onLine = (line: string) => {
      try {
        handle(line);
      } catch (error) {
        this.stderrLog.line(
          "swarm host line",
          `swarm host: a line the node could not take (${(error as Error)?.message}): ${line}`,
        );
      }
    };
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        buffered += text;
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          // Cut here too: a long line whose end came in the same read as its start (one pipe
          // read holds up to 64 KiB) used to be handed on whole (review s51).
          if (!cut) {
            onLine(newline > MAX_LINE_CHARS ? cutLine(buffered) : buffered.slice(0, newline));
          }
          cut = false;
          buffered = buffered.slice(newline + 1);
        }
        if (buffered.length > MAX_LINE_CHARS) {
          if (!cut) onLine(cutLine(buffered));
          cut = true;
          buffered = "";
        }
      }
    } catch {
      // the process went away; its exit is handled in `SwarmHost.#onExit`
    }
  }
}

/** The first {@link MAX_LINE_CHARS} of a line too long, marked as cut. */
function cutLine(text: string): string {
  return `${text.slice(0, MAX_LINE_CHARS)}… (cut)`;
}
