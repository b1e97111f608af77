/**
 * `ls --verify` fails (exit 1) when it finds a damaged file, a file whose root block is corrupt
 * reads like one whose leaf is (its name, "put the file again"), and `get` of a block the store set
 * aside as corrupt says so instead of "check the CID" (review s75 F4).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runGet } from "../../cli/get_command.ts";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { objectLocation, pseudoRandomBytes } from "../storage/_helpers.ts";

/** Three 256 KiB leaves and a root: a file with both kinds of block. */
const FILE_BYTES = 600 * 1024;

/** Flip one byte of `cid`'s stored copy, as a torn or rotten pack does. */
async function rot(storeDir: string, cid: string): Promise<void> {
  const { path, offset } = await objectLocation(storeDir, cid);
  const file = await Deno.open(path, { read: true, write: true });
  try {
    const byte = new Uint8Array(1);
    await file.seek(offset + 3, Deno.SeekMode.Start);
    await file.read(byte);
    byte[0] ^= 0xff;
    await file.seek(offset + 3, Deno.SeekMode.Start);
    await file.write(byte);
  } finally {
    file.close();
  }
}

/** A node directory holding one file named `f.bin`; its CID and its leaves. */
async function storedFile(dir: string): Promise<{ data: string; cid: string; leaves: string[] }> {
  const data = join(dir, "node");
  await Deno.writeFile(join(dir, "f.bin"), pseudoRandomBytes(FILE_BYTES, 5));
  const put = await capture(() => runPut(["--init", "--data", data, join(dir, "f.bin")]));
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  const store = await ChunkStore.open(join(data, "store"), { durable: false });
  const leaves = (await new FileStore(store).stat(cid)).chunks;
  assert.ok(leaves.length >= 3, `${leaves.length} leaves`);
  return { data, cid, leaves };
}

Deno.test("ls --verify exits 0 on a healthy store and 1 when a leaf is corrupt, text and --json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-damage-" });
  try {
    const { data, leaves } = await storedFile(dir);
    const healthy = await capture(() => runLs(["--verify", "--data", data]));
    assert.equal(healthy.code, 0, healthy.err);
    await rot(join(data, "store"), leaves[1]);
    const ls = await capture(() => runLs(["--verify", "--data", data]));
    assert.match(ls.out, /f\.bin {2}DAMAGED: 1 corrupt of \d+ chunks; put the file again/);
    assert.equal(ls.code, 1, "damage found must fail the command (it exited 0)");
    assert.match(ls.err, /1 file damaged/);
    const json = await capture(() => runLs(["--verify", "--json", "--data", data]));
    assert.equal(json.code, 1);
    // Quarantined by the first read: missing from then on.
    const { damage } = JSON.parse(json.out).files[0];
    assert.equal(damage.missing + damage.corrupt, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a corrupt root reads like a corrupt leaf in ls (name, put it again), also once quarantined, and get says it was quarantined", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-damage-" });
  try {
    const { data, cid } = await storedFile(dir);
    await rot(join(data, "store"), cid);
    // The first read finds it corrupt and moves it to quarantine/; the second finds it missing.
    for (const round of ["found corrupt", "already quarantined"]) {
      const ls = await capture(() => runLs(["--verify", "--data", data]));
      assert.equal(ls.code, 1, `${round}: exit 1`);
      assert.match(
        ls.out,
        new RegExp(
          `${cid} {2}f\\.bin {2}DAMAGED: root block corrupt \\(moved to quarantine/\\); put the file again`,
        ),
        `${round}: ${ls.out}`,
      );
      assert.doesNotMatch(ls.out, /ERROR /);
    }
    const get = await capture(() => runGet(["--data", data, "-o", join(dir, "out"), cid]));
    assert.equal(get.code, 1);
    assert.match(get.err, /set aside in quarantine\/ as corrupt.*put the file again/);
    assert.doesNotMatch(get.err, /check the CID/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a corrupt leaf set aside by an earlier ls --verify is still counted corrupt, not missing, by later ls runs, which say it was quarantined", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-damage-" });
  try {
    const { data, leaves } = await storedFile(dir);
    await rot(join(data, "store"), leaves[1]);
    const first = await capture(() => runLs(["--verify", "--data", data]));
    assert.match(first.out, /f\.bin {2}DAMAGED: 1 corrupt of \d+ chunks; put the file again/);
    // The first read moved it to quarantine/: later runs, with --verify or without, find it gone.
    for (const args of [["--verify"], []]) {
      const ls = await capture(() => runLs([...args, "--data", data]));
      assert.equal(ls.code, 1, `${args}: exit 1`);
      assert.match(
        ls.out,
        /f\.bin {2}DAMAGED: 1 corrupt \(set aside in quarantine\/ by an earlier read\) of \d+ chunks; put the file again/,
        `${args}: ${ls.out}`,
      );
      assert.doesNotMatch(ls.out, /missing/);
      const json = await capture(() => runLs([...args, "--json", "--data", data]));
      assert.deepEqual(JSON.parse(json.out).files[0].damage, {
        missing: 0,
        corrupt: 1,
        quarantined: 1,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
