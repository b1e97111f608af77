/**
 * The storage commands a user runs (`cli/{put,get,ls,gc}_command.ts`, `cli/exchange_commands.ts`):
 * `put`, `get`, `ls`, `gc`, `import`, `share`, their flags and what they print.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAX_FILE_LABEL_CHARS } from "../../protocols/media_type.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { runExport, runImport, runShare } from "../../cli/exchange_commands.ts";
import { FileStore } from "../../storage/file_store.ts";
import { runGc } from "../../cli/gc_command.ts";
import { runGet } from "../../cli/get_command.ts";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";
import { eventually } from "../_helpers/wait.ts";
import { flipObjectBit, pseudoRandomBytes } from "../storage/_helpers.ts";

// ---- put, get, ls and gc ------------------------------------------------------------------------

/** Run a command with console.log/error captured. */

Deno.test("cli put prints a CID that cli get writes back byte for byte; ls lists it", async () => {
  const dir = await Deno.makeTempDir();
  const input = `${dir}/in.bin`;
  const data = pseudoRandomBytes(700_000);
  await Deno.writeFile(input, data);
  const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, input]));
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  assert.match(cid, /^baf[ky]rei[a-z2-7]+$|^bafybei[a-z2-7]+$/);
  const get = await capture(() => runGet([cid, "-o", `${dir}/out.bin`, "--data", `${dir}/node`]));
  assert.equal(get.code, 0, get.err);
  assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
  const range = await capture(() =>
    runGet([cid, "-o", `${dir}/part.bin`, "--range", "1000-300000", "--data", `${dir}/node`])
  );
  assert.equal(range.code, 0, range.err);
  assert.deepEqual(await Deno.readFile(`${dir}/part.bin`), data.slice(1000, 300_000));
  const ls = await capture(() => runLs(["--data", `${dir}/node`]));
  assert.equal(ls.code, 0);
  assert.match(ls.out, new RegExp(`${cid}\\s+public\\s+683\\.6 KiB\\s+in\\.bin`));
  assert.match(ls.out, /1 file, 4 objects/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli private put needs the same key to get; a wrong key file is authentication_failed", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/in.txt`, new TextEncoder().encode("private words"));
  await Deno.writeFile(`${dir}/k1`, new Uint8Array(32).fill(1));
  await Deno.writeFile(`${dir}/k2`, new Uint8Array(32).fill(2));
  const node = `${dir}/node`;
  const put = await capture(() =>
    runPut(["--init", "--private", "--key-file", `${dir}/k1`, "--data", node, `${dir}/in.txt`])
  );
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  const bad = await capture(() =>
    runGet([cid, "--key-file", `${dir}/k2`, "-o", `${dir}/o.txt`, "--data", node])
  );
  assert.equal(bad.code, 1);
  assert.match(bad.err, /error \[authentication_failed\]/);
  await assert.rejects(Deno.stat(`${dir}/o.txt`), Deno.errors.NotFound);
  const good = await capture(() =>
    runGet([cid, "--key-file", `${dir}/k1`, "-o", `${dir}/o.txt`, "--data", node])
  );
  assert.equal(good.code, 0, good.err);
  assert.equal(await Deno.readTextFile(`${dir}/o.txt`), "private words");
  // With no --key-file the node identity is the key, created on first use.
  const idPut = await capture(() =>
    runPut(["--init", "--private", "--data", node, `${dir}/in.txt`])
  );
  assert.equal(idPut.code, 0, idPut.err);
  assert.equal((await Deno.stat(`${node}/identity.key`)).size, 32);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli reports unknown CIDs, quota and usage errors with codes and exit status", async () => {
  const dir = await Deno.makeTempDir();
  const node = `${dir}/node`;
  await Deno.mkdir(`${node}/store`, { recursive: true }); // get reads an existing store only
  const unknown = await capture(() =>
    runGet(["bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--data", node])
  );
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /chunk_not_found/);
  const invalid = await capture(() => runGet(["nope", "--data", node]));
  assert.equal(invalid.code, 1);
  assert.match(invalid.err, /invalid_cid/);
  await Deno.writeFile(`${dir}/big`, pseudoRandomBytes(100_000));
  const quota = await capture(() =>
    runPut(["--init", "--quota", "50000", "--data", node, `${dir}/big`])
  );
  assert.equal(quota.code, 1);
  assert.match(quota.err, /quota_exceeded/);
  assert.equal((await capture(() => runPut(["--init", "--data", node]))).code, 2);
  assert.equal((await capture(() => runGet(["--bogus"]))).code, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli get of a private file without any key is key_required and creates no identity", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/in.txt`, new TextEncoder().encode("x"));
  await Deno.writeFile(`${dir}/k`, new Uint8Array(32).fill(7));
  const put = await capture(() =>
    runPut([
      "--init",
      "--private",
      "--key-file",
      `${dir}/k`,
      "--data",
      `${dir}/node`,
      `${dir}/in.txt`,
    ])
  );
  const get = await capture(() => runGet([put.out.trim(), "--data", `${dir}/node`]));
  assert.equal(get.code, 1);
  assert.match(get.err, /key_required/);
  await assert.rejects(Deno.stat(`${dir}/node/identity.key`), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli --progress draws a progress bar on stderr and keeps stdout to the CID", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/in.bin`, pseudoRandomBytes(3_000_000));
  const script = new URL("../storage/_run_storage_command.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      script,
      "put",
      "--init",
      "--progress",
      "--data",
      `${dir}/node`,
      `${dir}/in.bin`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.match(new TextDecoder().decode(stdout), /^(bafkrei|bafybei)[a-z2-7]+\n$/);
  assert.match(new TextDecoder().decode(stderr), /put \[#{30}\] 100% 2\.9 MiB \/ 2\.9 MiB/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli gc removes what a put killed with -9 left behind, once past the grace period", async () => {
  const data = await Deno.makeTempDir();
  const script = new URL("../storage/_run_storage_command.ts", import.meta.url).pathname;
  const put = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, "put", "--init", "--data", data, "-"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stdin = put.stdin.getWriter();
  await stdin.write(pseudoRandomBytes(4 * 1024 * 1024, 40));
  // Sixteen 256 KiB chunks stored (each recorded as the running put's root before it was written:
  // the record alone no longer says a chunk is on disk), then kill -9.
  await eventually(async () => {
    const store = await ChunkStore.open(`${data}/store`).catch(() => undefined);
    return store !== undefined && (await store.stats()).objectCount >= 16;
  }, "sixteen stored chunks");
  put.kill("SIGKILL");
  await put.status;
  await stdin.close().catch(() => {});
  const orphans = (await (await ChunkStore.open(`${data}/store`)).stats()).objectCount;
  assert.ok(orphans >= 16, `${orphans} objects left`);

  const young = await capture(() => runGc(["--data", data]));
  assert.equal(young.code, 0, young.err);
  assert.match(
    young.out,
    /removed 0 objects .*; kept 0 referenced and \d+ younger than the grace period; 1 interrupted put released/,
  );
  const old = await capture(() => runGc(["--data", data, "--grace-ms", "0"]));
  assert.equal(old.code, 0, old.err);
  assert.match(old.out, new RegExp(`^removed ${orphans} objects \\(4\\.0 MiB\\)`));
  const stats = await (await ChunkStore.open(`${data}/store`)).stats();
  assert.equal(stats.objectCount, 0);
  assert.equal(stats.usedBytes, 0);
  assert.equal((await capture(() => runGc(["--data", data, "--grace-ms", "soon"]))).code, 2);
  await Deno.remove(data, { recursive: true });
});

Deno.test("cli ls flags a damaged file (missing chunks; corrupt ones with --verify) and a re-put repairs it", async () => {
  const dir = await Deno.makeTempDir();
  const node = `${dir}/node`;
  const data = pseudoRandomBytes(700_000, 41);
  await Deno.writeFile(`${dir}/in.bin`, data);
  const cid = (await capture(() => runPut(["--init", "--data", node, `${dir}/in.bin`]))).out.trim();
  const store = await ChunkStore.open(`${node}/store`);
  const chunks = (await new FileStore(store).stat(cid)).chunks;
  // Rot one chunk on disk: nobody has read it yet, so only --verify (which reads) can tell.
  await flipObjectBit(`${node}/store`, chunks[1], 7);
  const quick = await capture(() => runLs(["--data", node]));
  assert.doesNotMatch(quick.out, /DAMAGED/);
  const verified = await capture(() => runLs(["--data", node, "--verify"]));
  assert.match(
    verified.out,
    new RegExp(`${cid} .*DAMAGED: 1 corrupt of 3 chunks; put the file again`),
  );
  // Lose another one outright: plain ls sees that without reading anything.
  await store.delete(chunks[2]);
  const json = JSON.parse((await capture(() => runLs(["--data", node, "--json"]))).out);
  // The corrupt one was set aside in quarantine/ by --verify: still corrupt, not missing.
  assert.deepEqual(
    json.files[0].damage,
    { missing: 1, corrupt: 1, quarantined: 1 },
    "the chunk --verify quarantined as corrupt is counted apart from the one lost",
  );

  const again = await capture(() => runPut(["--init", "--data", node, `${dir}/in.bin`]));
  assert.equal(again.code, 0, again.err);
  assert.equal(again.out.trim(), cid);
  assert.doesNotMatch((await capture(() => runLs(["--data", node, "--verify"]))).out, /DAMAGED/);
  const get = await capture(() => runGet([cid, "-o", `${dir}/out.bin`, "--data", node]));
  assert.equal(get.code, 0, get.err);
  assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a re-put repairs a stored chunk that rotted before anyone read it", async () => {
  const dir = await Deno.makeTempDir();
  const node = `${dir}/node`;
  const data = pseudoRandomBytes(600_000, 42);
  await Deno.writeFile(`${dir}/in.bin`, data);
  const cid = (await capture(() => runPut(["--init", "--data", node, `${dir}/in.bin`]))).out.trim();
  const chunks = (await new FileStore(await ChunkStore.open(`${node}/store`)).stat(cid)).chunks;
  await flipObjectBit(`${node}/store`, chunks[0], 3);
  assert.equal((await capture(() => runPut(["--init", "--data", node, `${dir}/in.bin`]))).code, 0);
  const get = await capture(() => runGet([cid, "-o", `${dir}/out.bin`, "--data", node]));
  assert.equal(get.code, 0, get.err);
  assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli get to a reader that stops reading (| head -c 10) exits 0 quietly, no BrokenPipe stack", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/in.bin`, pseudoRandomBytes(3_000_000));
  const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, `${dir}/in.bin`]));
  const script = new URL("../storage/_run_storage_command.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, "get", put.out.trim(), "--data", `${dir}/node`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Read a little, then close the pipe: far more than the pipe buffer is still to be written.
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.ok((first.value?.length ?? 0) > 0);
  await reader.cancel();
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
  ]);
  assert.equal(status.code, 0, stderr);
  assert.equal(stderr, "");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli get -o DIR (a directory) exits 1 with one error line naming it, and leaves nothing in it", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/in.bin`, pseudoRandomBytes(100_000));
  const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, `${dir}/in.bin`]));
  await Deno.mkdir(`${dir}/out`);
  for (const output of [`${dir}/out/`, `${dir}/out`]) {
    const get = await capture(() =>
      runGet([put.out.trim(), "--data", `${dir}/node`, "-o", output])
    );
    assert.equal(get.code, 1);
    assert.match(get.err, new RegExp(`^error: -o ${output} names a directory`));
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], []);
  }
  // A missing parent directory: one line naming the file it was to write.
  const get = await capture(() =>
    runGet([put.out.trim(), "--data", `${dir}/node`, "-o", `${dir}/nope/f`])
  );
  assert.equal(get.code, 1);
  assert.match(get.err, new RegExp(`^error: cannot write ${dir}/nope/f: No such file`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Ctrl-C during cli get -o FILE removes the partial file and exits 130", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/in.bin`, pseudoRandomBytes(1_000_000));
  const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, `${dir}/in.bin`]));
  await Deno.mkdir(`${dir}/out`);
  let listening = 0;
  const get = await capture(() =>
    runGet([put.out.trim(), "--data", `${dir}/node`, "-o", `${dir}/out/f.bin`], {
      onStopSignal: (listener) => {
        listening++;
        queueMicrotask(listener); // Ctrl-C as the write begins
        return () => listening--;
      },
    })
  );
  assert.equal(get.code, 130);
  assert.match(get.err, /^interrupted: .*f\.bin was not written/);
  assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], []);
  assert.equal(listening, 0, "the signal listener is removed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("get, ls and gc on a data directory with no store refuse (check --data) and create nothing", async () => {
  const dir = await Deno.makeTempDir();
  const typo = `${dir}/typo_dir`;
  const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
  for (
    const [name, run] of [
      ["ls", () => runLs(["--data", typo])],
      ["gc", () => runGc(["--data", typo])],
      ["get", () => runGet([cid, "--data", typo])],
    ] as const
  ) {
    const result = await capture(run);
    assert.equal(result.code, 1, `${name}: ${result.out}`);
    assert.match(result.err, /error \[store_missing\]: no store in .*typo_dir.*check --data/, name);
    assert.equal(result.out, "", `${name} printed no listing`);
    await assert.rejects(Deno.stat(typo), Deno.errors.NotFound, `${name} created ${typo}`);
  }
  // An existing data directory without a store is refused the same way, and left as it was.
  await Deno.mkdir(`${dir}/node`);
  const ls = await capture(() => runLs(["--data", `${dir}/node`]));
  assert.equal(ls.code, 1);
  assert.deepEqual([...Deno.readDirSync(`${dir}/node`)], []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a cli put that fails midway says how many objects it left on disk and how to free them; ls counts them; gc --grace-ms 0 frees them", async () => {
  const dir = await Deno.makeTempDir();
  const node = `${dir}/node`;
  // 1,000,000 bytes are 4 chunks of at most 256 KiB: under this quota the first 2 fit, the 3rd not.
  await Deno.writeFile(`${dir}/big`, pseudoRandomBytes(1_000_000, 5));
  const put = await capture(() =>
    runPut(["--init", "--quota", "600000", "--data", node, `${dir}/big`])
  );
  assert.equal(put.code, 1);
  assert.equal(put.err.split("\n").length, 1, put.err);
  // Chunks are written concurrently, so the two that fit are two full ones (512.0 KiB) or a full
  // one and the short last one (464.6 KiB): whichever, the GC below frees exactly those.
  const left = put.err.match(
    /^error \[quota_exceeded\]: .*; the 2 objects \((512\.0|464\.6) KiB\) this put stored before it stay on disk until a GC removes them: `cli\.ts gc --grace-ms 0` now/,
  );
  assert.ok(left, put.err);
  const ls = await capture(() => runLs(["--data", node]));
  assert.equal(ls.code, 0, ls.err);
  assert.match(ls.out, /^0 files, 2 objects/m);
  assert.match(ls.out, /^2 objects no pinned file references .*`cli\.ts gc` removes them/m);
  const gc = await capture(() => runGc(["--data", node, "--grace-ms", "0"]));
  assert.ok(gc.out.startsWith(`removed 2 objects (${left[1]} KiB)`), gc.out);
  assert.doesNotMatch((await capture(() => runLs(["--data", node]))).out, /no pinned file/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli ls counts no object of pinned files (with inner nodes), directories or replicas as unreferenced", async () => {
  const dir = await Deno.makeTempDir();
  const node = `${dir}/node`;
  await Deno.mkdir(`${dir}/tree/sub`, { recursive: true });
  // 175 chunks: the UnixFS root links inner nodes, which ls must count as the file's.
  await Deno.writeFile(`${dir}/tree/sub/big`, pseudoRandomBytes(175 * 262_144 + 10, 6));
  await Deno.writeFile(`${dir}/tree/small`, new TextEncoder().encode("small"));
  assert.equal((await capture(() => runPut(["--init", "--data", node, `${dir}/tree`]))).code, 0);
  const store = await ChunkStore.open(`${node}/store`);
  await store.put(new TextEncoder().encode("held for a peer"), { replica: true });
  const ls = await capture(() => runLs(["--data", node]));
  assert.equal(ls.code, 0, ls.err);
  assert.doesNotMatch(ls.out, /no pinned file references/);
  await new FileStore(store).put(ReadableStream.from([new TextEncoder().encode("unpinned")]));
  const after = await capture(() => runLs(["--data", node]));
  assert.match(after.out, /^1 objects no pinned file references/m);
  await Deno.remove(dir, { recursive: true });
});

// ---- `put`, `get -o`, `import`, `share` on awkward input ----------------------------------------
//
// The storage commands a user runs: `put`, `get -o`, `import`, `share`.

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test("cli share --expires past the latest date a clock can show is a usage error, and no share is created", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeTextFile(join(dir, "s.txt"), "private");
  const put = await capture(() =>
    runPut(["--init", "--private", "--data", data, join(dir, "s.txt")])
  );
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
  const put = await capture(() => runPut(["--init", "--data", data, join(dir, "in.bin")]));
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
  const imported = await capture(() => runImport(["--init", "--data", data, notCar]));
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
      "--init",
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

// ---- `get --range` ------------------------------------------------------------------------------
//
// (README: "Exit codes", "Storage from the command line") `cli.ts get CID --range A-B` reads bytes
// A to B-1, and a range whose end comes before its start is a bad flag, so the command exits 2
// naming `--range`, as every command answers a bad flag. It exited 1 with `range_not_satisfiable:
// range [5, 2) is outside a N-byte file`, which is not what was wrong.

Deno.test("cli get --range with END before START exits 2 naming --range, not 1 as out of the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/in.txt`, new TextEncoder().encode("0123456789"));
    const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, `${dir}/in.txt`]));
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();

    const inverted = await capture(() =>
      runGet([cid, "--range", "5-2", "-o", `${dir}/out.txt`, "--data", `${dir}/node`])
    );
    assert.equal(inverted.code, 2, inverted.err);
    assert.match(inverted.err, /--range/);
    assert.doesNotMatch(inverted.err, /outside/);

    // A range inside the file still reads bytes A to B-1, and one starting past its end is still
    // refused as the work failing (exit 1): the file decides that, not the flag. (One that only
    // ends past it reads to the end: get_range_past_end_test.ts.)
    const inside = await capture(() =>
      runGet([cid, "--range", "2-5", "-o", `${dir}/part.txt`, "--data", `${dir}/node`])
    );
    assert.equal(inside.code, 0, inside.err);
    assert.equal(await Deno.readTextFile(`${dir}/part.txt`), "234");
    const past = await capture(() =>
      runGet([cid, "--range", "20-50", "-o", `${dir}/past.txt`, "--data", `${dir}/node`])
    );
    assert.equal(past.code, 1, past.err);
    assert.match(past.err, /range_not_satisfiable/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- `put --mime` -------------------------------------------------------------------------------
//
// `cli.ts put --mime`: the type a file is recorded with must be one a header carries.

/** Labels no `Content-Type` header can carry, which `POST /v1/files` refuses. */
const BAD_LABELS: Record<string, string> = {
  "holds CR LF": "text/plain\r\nx-evil: 1",
  "holds NUL": "text/plain\0",
  "holds characters past Latin-1": "text/plain; name=日本",
  "is empty": "",
  "has no subtype": "text",
};

for (const [what, mime] of Object.entries(BAD_LABELS)) {
  for (const tier of ["public", "private"]) {
    Deno.test(`cli put --mime whose label ${what} (${tier} tier) is a one-line usage error naming --mime, exit 2, and stores nothing`, async () => {
      const dir = await Deno.makeTempDir();
      const data = join(dir, "d");
      await Deno.writeTextFile(join(dir, "f.txt"), "hello");
      const args = tier === "private" ? ["--private"] : [];
      const put = await capture(() =>
        runPut(["--init", ...args, "--mime", mime, "--data", data, join(dir, "f.txt")])
      );
      // It used to store the file (exit 0) with that label as its type: every read of it then
      // had no header to carry it in.
      assert.equal(put.code, 2, put.out);
      assert.equal(put.out, "");
      assert.equal(put.err.split("\n").length, 1, put.err);
      assert.match(put.err, /--mime/);
      assert.equal(await exists(data), false, "no store is created, nothing is stored");
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test("cli put --mime with a media type and parameters records it as the file's type", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeTextFile(join(dir, "f.txt"), "hello");
  const mime = "text/plain; charset=utf-8";
  const put = await capture(() =>
    runPut(["--init", "--mime", mime, "--data", data, join(dir, "f.txt")])
  );
  assert.equal(put.code, 0, put.err);
  const store = await ChunkStore.open(join(data, "store"));
  assert.equal((await store.pinLabel(put.out.trim()))?.mime, mime);
  await Deno.remove(dir, { recursive: true });
});

// ---- `put --name` and `--mime` labels -----------------------------------------------------------
//
// `cli.ts put --name` / `--mime`: a label the put cannot record as given is a usage error before
// anything is stored, as `POST /v1/files` refuses it, never a put that exits 0 and drops it (one
// over `MAX_FILE_LABEL_CHARS`, or any label on a directory, which has none).

/** A directory with `f.txt` and `tree/a.txt`, and a data directory not yet made. */
async function fixture(): Promise<{ dir: string; data: string }> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "f.txt"), "hello");
  await Deno.mkdir(join(dir, "tree"));
  await Deno.writeTextFile(join(dir, "tree", "a.txt"), "a");
  return { dir, data: join(dir, "d") };
}

const LONG = MAX_FILE_LABEL_CHARS + 1;

const OVERLONG: Record<string, string[]> = {
  "--name": ["--name", "n".repeat(LONG)],
  // A label several KiB long was stored with exit 0, and its pin label, too large to be one the
  // store wrote, then read as none: the type given with it was lost as well.
  "--name of several KiB": ["--name", "n".repeat(8 * 1024), "--mime", "text/plain"],
  "--mime": ["--mime", `text/plain; x=${"v".repeat(LONG)}`],
};

for (const [what, flags] of Object.entries(OVERLONG)) {
  for (const tier of ["public", "private"]) {
    Deno.test(`cli put ${what} over ${MAX_FILE_LABEL_CHARS} chars (${tier} tier) is a one-line usage error naming the flag and the limit, exit 2, and stores nothing`, async () => {
      const { dir, data } = await fixture();
      const args = tier === "private" ? ["--private"] : [];
      const put = await capture(() =>
        runPut(["--init", ...args, ...flags, "--data", data, join(dir, "f.txt")])
      );
      assert.equal(put.code, 2, `${put.out}\n${put.err}`);
      assert.equal(put.out, "");
      assert.equal(put.err.split("\n").length, 1, put.err);
      assert.match(put.err, new RegExp(`${flags[0]} .*${MAX_FILE_LABEL_CHARS}`));
      assert.equal(await exists(data), false, "no store is created, nothing is stored");
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test(`cli put --name and --mime of ${MAX_FILE_LABEL_CHARS} chars are recorded as given`, async () => {
  const { dir, data } = await fixture();
  const name = "n".repeat(MAX_FILE_LABEL_CHARS);
  const mime = `text/plain; x=${"v".repeat(MAX_FILE_LABEL_CHARS - "text/plain; x=".length)}`;
  const put = await capture(() =>
    runPut(["--init", "--name", name, "--mime", mime, "--data", data, join(dir, "f.txt")])
  );
  assert.equal(put.code, 0, put.err);
  const store = await ChunkStore.open(join(data, "store"));
  assert.deepEqual(await store.pinLabel(put.out.trim()), { name, mime });
  await Deno.remove(dir, { recursive: true });
});

for (const flags of [["--name", "site"], ["--mime", "text/html"]]) {
  Deno.test(`cli put ${flags[0]} with a directory is a one-line usage error naming it, exit 2, and stores nothing`, async () => {
    const { dir, data } = await fixture();
    const put = await capture(() =>
      runPut(["--init", ...flags, "--data", data, join(dir, "tree")])
    );
    // It used to put the directory (exit 0) and drop the label without a word.
    assert.equal(put.code, 2, `${put.out}\n${put.err}`);
    assert.equal(put.out, "");
    assert.equal(put.err.split("\n").length, 1, put.err);
    assert.match(put.err, new RegExp(`${flags[0]}.*directory`));
    assert.equal(await exists(data), false, "no store is created, nothing is stored");
    await Deno.remove(dir, { recursive: true });
  });
}

// ---- mistyped flags -----------------------------------------------------------------------------
//
// The storage commands answer a mistyped flag with the flag it is near, as `start`, `infer` and
// `status` do, not with parseArgs' advice about positionals; and `ls` counts "1 file".

Deno.test("put, get, ls and export name a mistyped flag with the one it is near", async () => {
  const cases: [string, () => Promise<number>, string][] = [
    [
      "put",
      () => runPut(["--init", "--privat", "x"]),
      "unknown flag --privat (did you mean --private?)",
    ],
    ["get", () => runGet(["CID", "--rang", "0-1"]), "unknown flag --rang (did you mean --range?)"],
    ["ls", () => runLs(["--jsn"]), "unknown flag --jsn (did you mean --json?)"],
    ["export", () => runExport(["CID", "--dat", "x"]), "unknown flag --dat (did you mean --data?)"],
  ];
  for (const [name, run, expected] of cases) {
    const { code, err } = await capture(run);
    assert.equal(code, 2, name);
    // Stop 65: after `error: `, as every command's usage errors are.
    assert.ok(err.startsWith(`error: ${expected}\n`), `${name}: ${err}`);
    assert.doesNotMatch(err, /positional argument/, name);
  }
});

Deno.test("ls counts one stored file as 1 file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.txt`, "hello\n");
    const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, `${dir}/in.txt`]));
    assert.equal(put.code, 0, put.err);
    const ls = await capture(() => runLs(["--data", `${dir}/node`]));
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /^1 file, \d+ objects?,/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- where put stores (review s73 ops, findings 2 and 4) ----------------------------------------

Deno.test("put refuses a directory no node has used, creating nothing, unless --init; stderr says where it stored", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "in.txt"), "hello");
  const typo = join(dir, "n1-typo");
  const refused = await capture(() => runPut(["--data", typo, join(dir, "in.txt")]));
  assert.equal(refused.code, 1);
  assert.match(refused.err, /store_missing.*no node's data directory at .*n1-typo.*--init/);
  assert.equal(await exists(typo), false, "nothing created");
  const created = await capture(() => runPut(["--init", "--data", typo, join(dir, "in.txt")]));
  assert.equal(created.code, 0, created.err);
  assert.equal(created.err.trim(), `stored in ${join(typo, "store")}`);
  // A node's data directory (its key there, no store yet) takes a put without --init.
  const node = join(dir, "node");
  await Deno.mkdir(node);
  await Deno.writeTextFile(join(node, "identity.key"), "k");
  const put = await capture(() => runPut(["--data", node, join(dir, "in.txt")]));
  assert.equal(put.code, 0, put.err);
  assert.equal(await exists(join(node, "store")), true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("put without --data stores in the dataDir of VERIFLOW_CONFIG's file, read as start reads it", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "etc", "n1"), { recursive: true });
  await Deno.writeTextFile(join(dir, "etc", "n1", "identity.key"), "k");
  await Deno.writeTextFile(join(dir, "etc", "vf.json"), JSON.stringify({ dataDir: "n1" }));
  await Deno.writeTextFile(join(dir, "in.txt"), "hello");
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(import.meta.dirname!, "../storage/_run_storage_command.ts"),
      "put",
      "in.txt",
    ],
    cwd: dir,
    clearEnv: true,
    env: { VERIFLOW_CONFIG: join(dir, "etc", "vf.json"), PATH: Deno.env.get("PATH") ?? "" },
  }).output();
  const err = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, err);
  assert.equal(err.trim(), `stored in ${join(dir, "etc", "n1", "store")}`);
  assert.equal(await exists(join(dir, ".veriflow")), false, "no store of its own in the cwd");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ls and put given a file as --data say data_dir_not_directory, as start does, not the OS error", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "file.txt");
  await Deno.writeTextFile(file, "x");
  for (const run of [() => runLs(["--data", file]), () => runPut(["--data", file, file])]) {
    const result = await capture(run);
    assert.equal(result.code, 1);
    assert.match(
      result.err,
      /^error \[data_dir_not_directory\]: --data names a file, not a directory/,
    );
    assert.ok(!result.err.includes("os error"), result.err);
  }
  await Deno.remove(dir, { recursive: true });
});

// ---- one store_missing message (review s73 verify, F5) ------------------------------------------

Deno.test("every storage command says store_missing alike: the absolute path and --data, VERIFLOW_DATA_DIR, VERIFLOW_CONFIG in that order", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "in.txt"), "hello");
  const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
  // Relative, as an operator types it: the line must say which directory that was.
  const data = ["--data", "typo"];
  const reading: [string, () => Promise<number>][] = [
    ["ls", () => runLs(data)],
    ["gc", () => runGc(data)],
    ["get", () => runGet([cid, ...data])],
    ["export", () => runExport([cid, ...data])],
    ["share revoke", () => runShare(["revoke", "abc", ...data])],
  ];
  const adding: [string, () => Promise<number>][] = [
    ["put", () => runPut([...data, "in.txt"])],
    ["import", () => runImport([...data, "in.txt"])],
  ];
  const sources = /check --data, then VERIFLOW_DATA_DIR, then VERIFLOW_CONFIG's dataDir/;
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  const lines = new Map<string, string>();
  try {
    for (const [name, run] of [...reading, ...adding]) {
      const result = await capture(run);
      assert.equal(result.code, 1, `${name}: ${result.err}`);
      const line = result.err.trim();
      assert.ok(!line.includes("\n"), `${name}: ${line}`);
      assert.ok(line.startsWith("error [store_missing]: "), `${name}: ${line}`);
      assert.ok(
        line.includes(` ${join(dir, "typo")} `),
        `${name} names the absolute path: ${line}`,
      );
      assert.match(line, sources, name);
      lines.set(name, line);
    }
  } finally {
    Deno.chdir(cwd);
  }
  // One builder: the reading commands say the same line, and so do the adding ones.
  assert.equal(
    new Set(reading.map(([name]) => lines.get(name))).size,
    1,
    [...lines.values()].join("\n"),
  );
  assert.equal(lines.get("put"), lines.get("import"));
  assert.match(lines.get("put")!, /--init/);
  assert.equal(await exists(join(dir, "typo")), false, "nothing created");
  await Deno.remove(dir, { recursive: true });
});
