/**
 * `cli.ts infer --receipt-out FILE` run with only some permissions (stop 78): the receipt is
 * written to a new file in FILE's folder and renamed into place, and Deno's rename needs read as
 * well as write access there. Run with `--allow-read` alone, the command sent the paid job and
 * only failed at its end (the receipt on stderr); with `--allow-write` alone it was refused, told
 * to add both flags, one of which it had. Now either is refused before the job is sent, naming
 * exactly the flag (or flags) to add; with both the receipt is written. The CLI runs as a child
 * with the permissions a user would grant (`_cli_child.ts`).
 *
 * @module
 */
import { cli } from "./_cli_child.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { receipt, receiptServer } from "./_stub_receipt.ts";

/**
 * `infer --receipt-out DIR/r.json` run with `--allow-net=127.0.0.1` and `flags(DIR)` against a
 * stub node; says how many jobs it was sent and what the receipt file holds.
 */
async function inferWithFlags(flags: (dir: string) => string[]) {
  const dir = await Deno.makeTempDir({ prefix: "infer_receipt_perm_" });
  let jobs = 0;
  const signed = receipt();
  await using server = receiptServer(signed, () => void jobs++);
  try {
    const file = `${dir}/r.json`;
    const run = await cli(
      [
        "infer",
        "--url",
        `ws://127.0.0.1:${server.addr.port}`,
        "--max-tokens",
        "8",
        "--receipt-out",
        file,
        "Hello",
      ],
      undefined,
      { permissions: ["--allow-net=127.0.0.1", ...flags(dir)] },
    );
    const written = await Deno.readTextFile(file).then(JSON.parse, () => undefined);
    return { ...run, dir, file, jobs, signed, written };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The reason the refusal gives after the flags. */
const WHY = ": the receipt is written to a new file in that folder, then renamed over the path, " +
  "and Deno allows that only with read and write access there\n";

Deno.test("infer --receipt-out with --allow-read alone is refused before the job, naming --allow-write=FOLDER", async () => {
  const run = await inferWithFlags((dir) => [`--allow-read=${dir}`]);
  assertEquals([run.jobs, run.code], [0, 2], run.err);
  assertEquals(run.err, `error: --receipt-out ${run.file} needs --allow-write=${run.dir}${WHY}`);
});

Deno.test("infer --receipt-out with --allow-write alone is refused before the job, naming only --allow-read=FOLDER", async () => {
  const run = await inferWithFlags((dir) => [`--allow-write=${dir}`]);
  assertEquals([run.jobs, run.code], [0, 2], run.err);
  assertEquals(run.err, `error: --receipt-out ${run.file} needs --allow-read=${run.dir}${WHY}`);
});

Deno.test("infer --receipt-out with neither, or with them for the file alone, is refused before the job, naming both for its folder", async () => {
  for (
    const flags of [
      () => [],
      (dir: string) => [`--allow-read=${dir}/r.json`, `--allow-write=${dir}/r.json`],
    ]
  ) {
    const run = await inferWithFlags(flags);
    assertEquals([run.jobs, run.code], [0, 2], run.err);
    assertEquals(
      run.err,
      `error: --receipt-out ${run.file} needs --allow-read=${run.dir} --allow-write=${run.dir}${WHY}`,
    );
  }
});

Deno.test("infer --receipt-out with read and write access to its folder writes the receipt", async () => {
  const run = await inferWithFlags((dir) => [`--allow-read=${dir}`, `--allow-write=${dir}`]);
  assertEquals([run.jobs, run.code], [1, 0], run.err);
  assertEquals(run.written, run.signed);
  assert(!run.err.includes("error"), run.err);
});
