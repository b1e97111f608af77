/**
 * `cli.ts start` listens for stop signals before its modules load and its configuration is read
 * (review s82 cli, F1): a SIGINT in that first second stops start-up, exit 130 with the usual
 * line, and no node is left running. The child reads its configuration from a FIFO, so the test
 * knows the child is inside that window (it has opened the FIFO) without timing anything, and
 * the child starts with SIGINT ignored, as a node started with `&` from a script does: before
 * the fix, that signal was lost and the node came up.
 *
 * @module
 */
import assert from "node:assert/strict";
import { HeldStopSignals } from "../../node/stop_signals.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What the node prints once it is up (its HTTP API's address). */
const UP_LINE = "HTTP API";

Deno.test({
  name: "start: a SIGINT while the modules load and the config is read stops start-up, exit 130",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "vf_early_sigint_" });
    try {
      const fifo = `${dir}/config.json`;
      assert((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
      const child = new Deno.Command("sh", {
        // `trap '' INT` leaves SIGINT ignored across the exec, as `&` in a script does.
        args: ["-c", `trap '' INT; exec "$0" "$@"`, Deno.execPath(), "run", "-A", CLI, "start", ...[
          "--config",
          fifo,
          "--data",
          `${dir}/data`,
          "--port",
          "0",
          "--p2p-port",
          "0",
          "--heartbeat",
          "0",
          "--no-inference",
          "--no-prover",
          "--no-validator",
        ]],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // Opening the FIFO for writing returns once the child opened it to read its configuration:
      // the node's modules are loaded, and nothing has started.
      const config = await Deno.open(fifo, { write: true });
      child.kill("SIGINT");
      await config.write(new TextEncoder().encode("{}"));
      config.close();
      const out = collect(child.stdout);
      const err = collect(child.stderr);
      // A node that came up anyway is stopped, so that the test fails rather than hangs.
      let cameUp = false;
      const watch = (async () => {
        do {
          if (out.text().includes(UP_LINE)) {
            cameUp = true;
            child.kill("SIGTERM");
            return;
          }
        } while (!(await Promise.race([child.status.then(() => true), out.grew])));
      })();
      const status = await child.status;
      await watch;
      await Promise.all([out.done, err.done]);
      assert.equal(cameUp, false, `the node came up after the SIGINT:\n${out.text()}`);
      assert.equal(status.code, 130, err.text());
      assert.ok(err.text().includes("start-up interrupted"), err.text());
      assert.ok(out.text().includes("interrupted: stopping start-up"), out.text());
      // Nothing was started: no stake pledged, no store opened.
      assert.equal(await exists(`${dir}/data/stake_pledge.cbor`), false);
      assert.equal(await exists(`${dir}/data/store`), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("HeldStopSignals: a signal heard before the hand-over is given to the listener once", () => {
  let deliver = () => {};
  let listening = true;
  let forced = 0;
  let now = 0;
  const held = new HeldStopSignals({
    now: () => now,
    onForce: () => forced++,
    listen: (listener) => {
      deliver = listener;
      return () => listening = false;
    },
  });
  deliver();
  now = 5; // the forwarded copy of the same Ctrl-C
  deliver();
  assert.equal(held.held, true);
  let calls = 0;
  const stop = held.onStopSignal(() => calls++);
  assert.equal(calls, 1);
  assert.equal(held.held, false);
  deliver();
  assert.equal(calls, 2);
  stop();
  assert.equal(forced, 0);
  held.close();
  assert.equal(listening, false);
});

Deno.test("HeldStopSignals: a second Ctrl-C before the hand-over exits at once", () => {
  let deliver = () => {};
  let forced = 0;
  let now = 0;
  const held = new HeldStopSignals({
    now: () => now,
    onForce: () => forced++,
    listen: (listener) => {
      deliver = listener;
      return () => {};
    },
  });
  deliver();
  now = 1_000;
  deliver();
  assert.equal(forced, 1);
  held.close();
});

/** A stream's text as it arrives; `grew` settles (false) on each new chunk. */
function collect(stream: ReadableStream<Uint8Array>) {
  let text = "";
  let grow = Promise.withResolvers<false>();
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      grow.resolve(false);
      grow = Promise.withResolvers<false>();
    }
  })();
  return {
    text: () => text,
    get grew() {
      return grow.promise;
    },
    done,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
