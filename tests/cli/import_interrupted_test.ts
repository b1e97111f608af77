/**
 * Ctrl-C during `cli.ts import` (review s75): the import stops, exits 130 and says what it left
 * (the blocks it stored, unpinned) and that GC removes them; it printed nothing before.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runExport, runImport } from "../../cli/exchange_commands.ts";
import { runPut } from "../../cli/put_command.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { eventually } from "../_helpers/wait.ts";

/** Bytes in the pack files of the store in `data`: grows as blocks are stored. */
async function packedBytes(data: string): Promise<number> {
  let total = 0;
  try {
    for await (const entry of Deno.readDir(join(data, "store", "packs"))) {
      total += (await Deno.stat(join(data, "store", "packs", entry.name))).size;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return total;
}

Deno.test("import stopped by a stop signal exits 130 saying how many blocks it left and that gc removes them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-import-" });
  try {
    // A file of several chunks, exported as a CAR from one store, imported into another.
    const bytes = new Uint8Array(3 * 256 * 1024 + 10).map((_, i) => (i * 7) & 0xff);
    await Deno.writeFile(join(dir, "big"), bytes);
    const put = await capture(() => runPut(["--init", "--data", join(dir, "a"), join(dir, "big")]));
    assert.equal(put.code, 0, put.err);
    const car = join(dir, "big.car");
    const exported = await capture(() =>
      runExport([put.out.trim(), "--data", join(dir, "a"), "-o", car])
    );
    assert.equal(exported.code, 0, exported.err);
    const carBytes = await Deno.readFile(car);

    // The CAR arrives through a pipe: its first half, then the signal, then the end of input.
    const fifo = join(dir, "in.car");
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    const into = join(dir, "b");
    await Deno.mkdir(into);
    await Deno.writeFile(join(into, "identity.key"), new Uint8Array(32));
    let stop: (() => void) | undefined;
    const onStopSignal = (listener: () => void) => {
      stop = listener;
      return () => {
        stop = undefined;
      };
    };
    const running = capture(() => runImport([fifo, "--data", into], { onStopSignal }));
    const writer = await Deno.open(fifo, { write: true });
    await writer.write(carBytes.subarray(0, Math.floor(carBytes.length / 2)));
    await eventually(
      async () => stop !== undefined && await packedBytes(into) > 0,
      "a block stored",
    );
    stop!();
    writer.close();
    const imported = await running;
    assert.equal(imported.code, 130, imported.err);
    assert.match(
      imported.err,
      /^interrupted: import stopped before its roots were pinned; the \d+ objects \(.*\) this put stored before it stay on disk until a GC removes them: `cli\.ts gc --grace-ms 0`/,
    );
    assert.equal(imported.out, "", "no root printed: nothing was pinned");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
