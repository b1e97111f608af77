import assert from "node:assert/strict";
import { acceptEach } from "../../protocols/_accept_loop.ts";

/** A listener whose accepts answer from `script` in turn: a connection, or an error thrown. */
function scriptedListener(script: (string | Error)[]) {
  let i = 0;
  let closed = false;
  let wake: (() => void) | undefined;
  const listener = {
    accept(): Promise<Deno.Conn> {
      if (closed) return Promise.reject(new Deno.errors.BadResource("closed"));
      const next = script[i++];
      if (next === undefined) {
        // Nothing more: wait until closed, as a real listener does.
        return new Promise((_, reject) => {
          wake = () => reject(new Deno.errors.BadResource("closed"));
        });
      }
      return next instanceof Error
        ? Promise.reject(next)
        : Promise.resolve({ name: next } as unknown as Deno.Conn);
    },
  } as unknown as Deno.Listener<Deno.Conn>;
  const close = () => {
    closed = true;
    wake?.();
  };
  return { listener, close, closed: () => closed };
}

Deno.test("a failed accept (out of file descriptors) is retried, not taken for the listener's end; closing ends the loop", async () => {
  const emfile = new Error("Too many open files (os error 24)");
  const { listener, close, closed } = scriptedListener(["a", emfile, emfile, "b", "c"]);
  const accepted: string[] = [];
  const waits: number[] = [];
  const loop = acceptEach(
    listener,
    (conn) => accepted.push((conn as unknown as { name: string }).name),
    closed,
    { wait: (ms) => (waits.push(ms), Promise.resolve()) },
  );
  while (accepted.length < 3) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(accepted, ["a", "b", "c"], "accepting goes on after the errors");
  assert.deepEqual(waits, [50, 100], "backing off between retries");
  close();
  await loop; // and ends once closed
});

Deno.test("a run of failed accepts is logged as a run: its first error, a reminder every 60, and the recovery", async () => {
  const emfile = new Error("Too many open files (os error 24)");
  const reset = new Error("Connection reset by peer (os error 104)");
  const script = ["a", ...Array(130).fill(emfile), "b", reset, "c"];
  const { listener, close, closed } = scriptedListener(script);
  const accepted: string[] = [];
  const lines: string[] = [];
  const loop = acceptEach(
    listener,
    (conn) => accepted.push((conn as unknown as { name: string }).name),
    closed,
    { log: (line) => lines.push(line), wait: () => Promise.resolve() },
  );
  while (accepted.length < 3) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(lines, [
    "accept failed (Too many open files (os error 24)); retrying",
    "accept still failing after 60 tries (Too many open files (os error 24))",
    "accept still failing after 120 tries (Too many open files (os error 24))",
    "accepting again after 130 failed accept(s)",
    "accept failed (Connection reset by peer (os error 104)); retrying",
    "accepting again after 1 failed accept(s)",
  ]);
  close();
  await loop;
});
