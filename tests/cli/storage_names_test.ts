/**
 * Entry names the storage commands meet (review s74): `put DIR` holding a file name that is not
 * UTF-8 is refused with a typed error naming it (it failed with a raw "No such file" OS error
 * about a file that exists), and `import` of a directory whose entries no path reaches by name
 * says so in one warning line.
 */
import assert from "node:assert/strict";
import { CarWriter } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { runImport } from "../../cli/exchange_commands.ts";
import { runPut } from "../../cli/put_command.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("put DIR holding a file name that is not UTF-8 is invalid_name naming the entry, not an OS error about a missing file", async () => {
  const dir = await Deno.makeTempDir();
  const site = `${dir}/site`;
  await Deno.mkdir(site);
  await Deno.writeTextFile(`${site}/ok.txt`, "b");
  // "caf\xe9.txt": Latin-1, common in old archives. Deno names paths by text, so the file is
  // made by a shell given the raw bytes.
  const made = await new Deno.Command("sh", {
    args: ["-c", `printf a > "$(printf 'caf\\351.txt')"`],
    cwd: site,
  }).output();
  assert.equal(made.code, 0);
  const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, site]));
  assert.equal(put.code, 1, put.err);
  assert.match(
    put.err,
    /^error \[invalid_name\]: ".*\/site\/caf\uFFFD\.txt": a file name that is not UTF-8/,
  );
  assert.ok(!/os error|No such file/.test(put.err), put.err);
  assert.equal(put.out, "", "no CID printed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("put DIR stores a file whose real name holds U+FFFD (valid UTF-8): only a name that opens nothing is refused", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/site`);
  await Deno.writeTextFile(`${dir}/site/\uFFFD.txt`, "replacement");
  const put = await capture(() => runPut(["--init", "--data", `${dir}/node`, `${dir}/site`]));
  assert.equal(put.code, 0, put.err);
  assert.match(put.out.trim(), /^bafybei[a-z2-7]+$/);
  await Deno.remove(dir, { recursive: true });
});

/** A CAR file of `blocks` rooted at the first, written to `path`. */
async function writeCar(path: string, blocks: { cid: string; bytes: Uint8Array }[]) {
  const { writer, out } = CarWriter.create([CID.parse(blocks[0].cid)]);
  const parts: Uint8Array[] = [];
  const reading = (async () => {
    for await (const part of out) parts.push(part);
  })();
  for (const block of blocks) await writer.put({ cid: CID.parse(block.cid), bytes: block.bytes });
  await writer.close();
  await reading;
  await Deno.writeFile(path, new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer()));
}

function directory(names: string[], leaf: string): { cid: string; bytes: Uint8Array } {
  const bytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: names.map((Name) => ({ Name, Hash: CID.parse(leaf), Tsize: 4 })),
  }));
  return { cid: cidOf(bytes, DAG_PB_CODEC), bytes };
}

Deno.test("import of a directory with entries no path reaches (a/b, NUL, control, ., .., empty, a repeated name) prints one warning line counting them; a clean one prints none", async () => {
  const dir = await Deno.makeTempDir();
  const leaf = { cid: cidOf(text("leaf"), RAW_CODEC), bytes: text("leaf") };
  const hostile = directory(
    ["a/b", "nul\0x", "bell\x07", "..", ".", "", "dup", "dup", "ok"],
    leaf.cid,
  );
  await writeCar(`${dir}/hostile.car`, [hostile, leaf]);
  const imported = await capture(() =>
    runImport(["--init", "--data", `${dir}/node`, `${dir}/hostile.car`])
  );
  assert.equal(imported.code, 0, imported.err);
  const warnings = imported.err.split("\n").filter((line) => line.startsWith("warning:"));
  assert.equal(warnings.length, 1, imported.err);
  assert.match(warnings[0], /^warning: 7 directory entries have names no path can reach/);
  const clean = directory(["a.txt", "b.txt"], leaf.cid);
  await writeCar(`${dir}/clean.car`, [clean, leaf]);
  const quiet = await capture(() => runImport(["--data", `${dir}/node`, `${dir}/clean.car`]));
  assert.equal(quiet.code, 0, quiet.err);
  assert.ok(!quiet.err.includes("warning"), quiet.err);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("put's help names the kubo command whose CID a directory gets: ipfs add -r --hidden (put DIR includes dotfiles)", async () => {
  const { PUT_USAGE } = await import("../../cli/storage_help.ts");
  const flat = PUT_USAGE.replace(/\s+/g, " ");
  assert.match(flat, /`ipfs add -r --hidden --cid-version 1 --raw-leaves`/);
  assert.match(flat, /dotfiles included/);
});
