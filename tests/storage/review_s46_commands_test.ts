/** Review s46 of the storage commands a user runs: `put`, `get -o`, `import`, `share`. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runGet, runPut } from "../../storage/storage_commands.ts";
import { runImport, runShare } from "../../storage/exchange_commands.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test("cli share --expires past the latest date a clock can show is a usage error, and no share is created", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeTextFile(join(dir, "s.txt"), "private");
  const put = await capture(() => runPut(["--private", "--data", data, join(dir, "s.txt")]));
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  // 200 million days: a finite number of milliseconds, past what a Date can hold. It used to
  // store the share and print its link, then fail (exit 1, "Invalid time value") when saying
  // until when it opens: the link worked although the command said it failed.
  const shared = await capture(() =>
    runShare([cid, "--expires", "200000000d", "--data", data, "--url", "http://127.0.0.1:9"])
  );
  assert.equal(shared.code, 2, shared.err);
  assert.equal(shared.out, "");
  assert.match(shared.err, /--expires/);
  const shares = join(data, "store", "shares");
  const records = await exists(shares) ? await Array.fromAsync(Deno.readDir(shares)) : [];
  assert.deepEqual(records, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli get -o FILE whose name is long but legal (240 bytes of unicode) writes it", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  const bytes = pseudoRandomBytes(300_000, 7);
  await Deno.writeFile(join(dir, "in.bin"), bytes);
  const put = await capture(() => runPut(["--data", data, join(dir, "in.bin")]));
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  // 120 × "é" is 240 bytes, under the 255 a name may have; the temporary file's name used to
  // be this name plus a UUID and ".part", too long: "File name too long (os error 36)".
  const output = join(dir, "é".repeat(120));
  await Deno.writeTextFile(output, "old"); // and the name is legal: plain writes take it
  const got = await capture(() => runGet([cid, "-o", output, "--data", data]));
  assert.equal(got.code, 0, got.err);
  assert.deepEqual(await Deno.readFile(output), bytes);
  // Nothing else is left beside it.
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  assert.deepEqual(names, ["d", "in.bin", "é".repeat(120)].sort());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli import of a directory is one error line naming it, and creates no store in --data", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  const notCar = join(dir, "cars");
  await Deno.mkdir(notCar);
  const imported = await capture(() => runImport(["--data", data, notCar]));
  assert.notEqual(imported.code, 0);
  assert.equal(imported.err.split("\n").length, 1, imported.err);
  assert.ok(imported.err.includes(notCar), imported.err);
  // A path that is not a CAR file must not leave a new, empty store, as a missing one does not.
  assert.equal(await exists(data), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli put --progress that fails midway ends the bar's line before its error line", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "big.bin"), pseudoRandomBytes(2_000_000, 9));
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLI,
      "put",
      "--progress",
      "--quota",
      "600000",
      "--data",
      join(dir, "d"),
      join(dir, "big.bin"),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, err);
  assert.match(err, /\rput /); // the bar was drawn
  // The error is a line of its own, not appended to the bar's ("put ... 1.2 MiB/serror [...").
  assert.match(err, /\nerror \[quota_exceeded\]/);
  await Deno.remove(dir, { recursive: true });
});
