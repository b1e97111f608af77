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
  const errors: unknown[] = [];
  const loop = acceptEach(
    listener,
    (conn) => accepted.push((conn as unknown as { name: string }).name),
    closed,
    (error) => errors.push(error),
  );
  while (accepted.length < 3) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(accepted, ["a", "b", "c"], "accepting goes on after the errors");
  assert.deepEqual(errors, [emfile, emfile]);
  close();
  await loop; // and ends once closed
});
