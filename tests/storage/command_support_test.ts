/** `writeOutput` and `reportErrors`: what a storage command leaves behind when stopped or failing. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { InterruptedError, reportErrors, writeOutput } from "../../storage/_command_support.ts";

Deno.test("writeOutput: a stop signal midway through the file removes its temporary file and rejects with InterruptedError", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const output = join(dir, "f.bin");
    let stop!: () => void;
    let listening = 0;
    let pulls = 0;
    // One chunk goes out; when the writer asks for the next, Ctrl-C.
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (++pulls === 1) controller.enqueue(new Uint8Array(64 * 1024).fill(1));
        else stop();
      },
    }, { highWaterMark: 0 });
    const error = await writeOutput(source, output, {
      onStopSignal: (listener) => {
        stop = listener;
        listening++;
        return () => listening--;
      },
    }).then(() => undefined, (error) => error);
    assert.ok(error instanceof InterruptedError, String(error));
    assert.ok(pulls >= 2, "the signal came after the first chunk");
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no partial or temporary file is left");
    assert.equal(listening, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reportErrors: InterruptedError exits 130, BrokenPipe 0 quietly, other Deno errors 1 with one line", async () => {
  const lines: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    assert.equal(
      await reportErrors(() => Promise.reject(new InterruptedError("x not written"))),
      130,
    );
    assert.deepEqual(lines.splice(0), ["interrupted: x not written"]);
    assert.equal(await reportErrors(() => Promise.reject(new Deno.errors.BrokenPipe("pipe"))), 0);
    assert.deepEqual(lines.splice(0), []);
    const notDir = new Deno.errors.NotADirectory("Not a directory (os error 20): open 'a/b'");
    assert.equal(await reportErrors(() => Promise.reject(notDir)), 1);
    assert.deepEqual(lines.splice(0), ["error: Not a directory (os error 20): open 'a/b'"]);
  } finally {
    console.error = error;
  }
});
