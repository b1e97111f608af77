/**
 * `cli.ts infer --receipt-out FILE` loses no data (review s77 vclient, F4): a path that cannot
 * take the receipt (a missing folder, a directory, a symlink, dangling or not, or an existing file
 * without `--force`) is refused before the job is sent, so no paid job loses its receipt to a
 * typo and no file is overwritten unasked; the receipt is written to a new file in FILE's folder
 * and renamed into place (no torn file, no temp file left); and when writing fails after the job,
 * the receipt is printed on stderr instead.
 */
import { runInfer } from "../../cli/infer_command.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { receipt, receiptServer } from "./_stub_receipt.ts";

const PRECIOUS = "my precious notes\n";

/**
 * `infer --receipt-out` with `args` against a stub that ends with `signed`; `duringJob` runs when
 * the job arrives (before its frames are sent). Says how many jobs the stub was sent.
 */
async function inferWith(
  args: string[],
  signed: unknown = receipt(),
  duringJob: () => void = () => {},
): Promise<{ status: number; err: string; jobs: number }> {
  let jobs = 0;
  await using server = receiptServer(signed, () => {
    jobs++;
    duringJob();
  });
  const err: string[] = [];
  const status = await runInfer(
    ["--url", `ws://127.0.0.1:${server.addr.port}`, "--max-tokens", "8", ...args, "Hello"],
    { stdout: () => {}, stderr: (t) => void err.push(t) },
  );
  return { status, err: err.join(""), jobs };
}

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "infer_receipt_out_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("infer --receipt-out in a folder that does not exist is refused before the job is sent", async () => {
  await inTempDir(async (dir) => {
    const { status, err, jobs } = await inferWith(["--receipt-out", `${dir}/nodir/r.json`]);
    assertEquals(jobs, 0);
    assertEquals(status, 2);
    assert(err.includes(`${dir}/nodir`), err);
  });
});

Deno.test("infer --receipt-out on a directory is refused before the job is sent", async () => {
  await inTempDir(async (dir) => {
    const { status, err, jobs } = await inferWith(["--receipt-out", dir]);
    assertEquals(jobs, 0);
    assertEquals(status, 2);
    assert(err.includes("directory"), err);
  });
});

Deno.test("infer --receipt-out on an existing file is refused before the job unless --force, which replaces it", async () => {
  await inTempDir(async (dir) => {
    const file = `${dir}/notes.txt`;
    await Deno.writeTextFile(file, PRECIOUS);
    const refused = await inferWith(["--receipt-out", file]);
    assertEquals(refused.jobs, 0);
    assertEquals(refused.status, 2);
    assert(refused.err.includes("--force"), refused.err);
    assertEquals(await Deno.readTextFile(file), PRECIOUS);
    const signed = receipt();
    const forced = await inferWith(["--receipt-out", file, "--force"], signed);
    assertEquals(forced.status, 0, forced.err);
    assertEquals(JSON.parse(await Deno.readTextFile(file)), signed);
    // Written beside it and renamed: nothing else is left in the folder.
    assertEquals([...Deno.readDirSync(dir)].map((entry) => entry.name), ["notes.txt"]);
  });
});

Deno.test("infer --receipt-out on a symlink, dangling or not, is refused before the job, even with --force", async () => {
  await inTempDir(async (dir) => {
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, PRECIOUS);
    await Deno.symlink(victim, `${dir}/link.json`);
    await Deno.symlink(`${dir}/elsewhere.json`, `${dir}/dangling.json`);
    for (const args of [[], ["--force"]]) {
      const linked = await inferWith(["--receipt-out", `${dir}/link.json`, ...args]);
      assertEquals([linked.jobs, linked.status], [0, 2]);
      assert(linked.err.includes("symbolic link"), linked.err);
      const dangling = await inferWith(["--receipt-out", `${dir}/dangling.json`, ...args]);
      assertEquals([dangling.jobs, dangling.status], [0, 2]);
    }
    assertEquals(await Deno.readTextFile(victim), PRECIOUS);
    assertEquals(await exists(`${dir}/elsewhere.json`), false);
  });
});

Deno.test("infer --receipt-out writes a new file whole, leaving no temp file", async () => {
  await inTempDir(async (dir) => {
    const signed = receipt();
    const { status, err, jobs } = await inferWith(["--receipt-out", `${dir}/r.json`], signed);
    assertEquals([jobs, status], [1, 0], err);
    assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/r.json`)), signed);
    assertEquals([...Deno.readDirSync(dir)].map((entry) => entry.name), ["r.json"]);
  });
});

Deno.test("infer --receipt-out that cannot be written after the job prints the receipt on stderr, exit 1", async () => {
  await inTempDir(async (dir) => {
    const folder = `${dir}/gone`;
    await Deno.mkdir(folder);
    const signed = receipt();
    // The folder goes while the job runs: the check before it passed, the write fails.
    const { status, err, jobs } = await inferWith(
      ["--receipt-out", `${folder}/r.json`],
      signed,
      () => Deno.removeSync(folder),
    );
    assertEquals([jobs, status], [1, 1]);
    assert(err.includes("cannot write the receipt"), err);
    const printed = err.slice(err.indexOf("{"), err.lastIndexOf("}") + 1);
    assertEquals(JSON.parse(printed), signed);
  });
});
