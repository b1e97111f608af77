/**
 * The process's stop signals (node/stop_signals.ts), sent for real to a child process that
 * listens as `cli.ts start` does: each one must start the graceful stop, not kill the process
 * (review s72 ops, finding 2: SIGHUP, a closed terminal or SSH session, killed a node at once,
 * exit 129, with no drain and no checkpoint). And once that terminal is gone, `cli.ts start`'s
 * log lines cannot be written: the drain must go on without them. The pure rules (which
 * signals, duplicates) are pinned in tests/cli/start_command_test.ts.
 */
import assert from "node:assert/strict";
import { PROCESS_IO } from "../../cli/start_command.ts";

const CHILD = new URL("./_stop_signal_child.ts", import.meta.url).pathname;

/** Reads a child's stdout line by line. */
class Lines {
  #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";
  /** Everything read so far. */
  seen = "";

  constructor(stdout: ReadableStream<Uint8Array>) {
    this.#reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Resolves once `line` has been printed; false when stdout ended first. */
  async until(line: string): Promise<boolean> {
    while (!this.#buffered.split("\n").includes(line)) {
      const { value, done } = await this.#reader.read();
      if (done) return false;
      this.#buffered += value;
      this.seen += value;
    }
    this.#buffered = this.#buffered.slice(this.#buffered.indexOf(`${line}\n`) + line.length + 1);
    return true;
  }

  /** Reads to the end (the child exited). */
  async rest(): Promise<string> {
    for (;;) {
      const { value, done } = await this.#reader.read();
      if (done) return this.seen;
      this.seen += value;
    }
  }
}

for (
  const [signal, why] of [
    ["SIGHUP", "the terminal or SSH session the node ran in was closed"],
    ["SIGTERM", "systemd, Docker or kill"],
    ["SIGINT", "Ctrl-C"],
  ] as const
) {
  Deno.test({
    name:
      `${signal} (${why}) starts the graceful stop and the process exits 0 after it, not killed`,
    // Windows has no such signals to send (stopSignalNames lists SIGINT and SIGBREAK there).
    ignore: Deno.build.os === "windows",
    fn: async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--allow-read", CHILD],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const lines = new Lines(child.stdout);
      try {
        assert.ok(await lines.until("ready"), `the child never got ready: ${lines.seen}`);
        Deno.kill(child.pid, signal);
        const draining = await lines.until("draining");
        const stdin = child.stdin.getWriter();
        // The child's drain waits for this line: it is alive past the signal.
        if (draining) await stdin.write(new TextEncoder().encode("go on\n"));
        await stdin.close().catch(() => {}); // a killed child closed its end already
        await lines.rest();
        const status = await child.status;
        assert.deepEqual(
          { draining, stopped: lines.seen.includes("stopped."), code: status.code },
          { draining: true, stopped: true, code: 0 },
          `${signal} killed the process (signal ${status.signal}, code ${status.code})`,
        );
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
        await child.status;
      }
    },
  });
}

Deno.test("after a hangup, a log line the closed terminal refuses (EIO) is dropped, not thrown into the drain", () => {
  const log = console.log;
  const error = console.error;
  const refuse = () => {
    throw new Error("Input/output error (os error 5)");
  };
  console.log = refuse;
  console.error = refuse;
  try {
    // Failed before the fix: the first line of the drain ("shutting down: …") threw out of the
    // SIGHUP listener, and the node died with exit 1 and no shutdown checkpoint.
    PROCESS_IO.out("shutting down: open requests finish");
    PROCESS_IO.err("error: stopping the inference actor");
  } finally {
    console.log = log;
    console.error = error;
  }
});
