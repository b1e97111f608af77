import assert from "node:assert/strict";
import { join } from "node:path";
import { OwnerKey } from "../../storage/private_tier.ts";
import { newShareId } from "../../storage/share_links.ts";
import { CarBlockIterator } from "@ipld/car";
import { cidDigest } from "../../protocols/cid.ts";
import { digestOf, equalBytes } from "../../storage/_hash.ts";
import { parseDuration, runExport, runShare } from "../../cli/exchange_commands.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { importerRoot } from "../storage/_ipfs_reference.ts";
import { sharedPrivateFile } from "./_shared_private_file.ts";
import { cli } from "./_cli_child.ts";

Deno.test("cli export writes a CAR the npm reader verifies block by block; cli import of it into another store gives the same file", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = pseudoRandomBytes(900_000, 41);
  await Deno.writeFile(join(dir, "f.bin"), bytes);
  const put = await cli(["put", "--init", "--data", join(dir, "a"), join(dir, "f.bin")]);
  const cid = new TextDecoder().decode(put.stdout).trim();
  const exported = await cli(["export", cid, "--data", join(dir, "a")]);
  assert.equal(exported.code, 0, exported.err);
  const car = await CarBlockIterator.fromIterable(ReadableStream.from([exported.stdout]));
  assert.deepEqual((await car.getRoots()).map(String), [cid]);
  let count = 0;
  for await (const block of car) {
    assert.ok(equalBytes(cidDigest(block.cid.toString()), await digestOf(block.bytes)));
    count++;
  }
  assert.equal(count, (await importerRoot([{ content: bytes }])).blocks.blocks.size);
  await Deno.writeFile(join(dir, "f.car"), exported.stdout);
  const imported = await cli(["import", "--init", "--data", join(dir, "b"), join(dir, "f.car")]);
  assert.equal(imported.code, 0, imported.err);
  assert.equal(new TextDecoder().decode(imported.stdout).trim(), cid);
  const got = await cli(["get", cid, "--data", join(dir, "b")]);
  assert.deepEqual(got.stdout, bytes);
  // A CAR with one flipped byte in a block is refused.
  const bad = exported.stdout.slice();
  bad[bad.length - 10] ^= 1;
  await Deno.writeFile(join(dir, "bad.car"), bad);
  const refused = await cli(["import", "--init", "--data", join(dir, "c"), join(dir, "bad.car")]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /corrupt_chunk/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli share prints a link with the file's keys in the fragment; share revoke removes the record", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeFile(join(dir, "s.txt"), new TextEncoder().encode("private"));
  const put = await cli(["put", "--init", "--private", "--data", data, join(dir, "s.txt")]);
  const cid = new TextDecoder().decode(put.stdout).trim();
  const shared = await cli([
    "share",
    cid,
    "--expires",
    "24h",
    "--data",
    data,
    "--url",
    "http://127.0.0.1:9",
  ]);
  assert.equal(shared.code, 0, shared.err);
  const link = new TextDecoder().decode(shared.stdout).trim();
  assert.match(link, new RegExp(`^http://127\\.0\\.0\\.1:9/share/[A-Za-z0-9_-]{22}#c=${cid}&k=`));
  const id = link.split("/share/")[1].split("#")[0];
  const record = JSON.parse(await Deno.readTextFile(join(data, "store", "shares", id)));
  assert.equal(record.cid, cid);
  assert.ok(Math.abs(record.expiresAt - record.createdAt - 24 * 3_600_000) < 1_000);
  const locked = await cli(
    ["share", cid, "--password", "--data", data],
    new TextEncoder().encode("pw\n"),
  );
  assert.match(new TextDecoder().decode(locked.stdout), /#c=[a-z0-9]+&p=/);
  assert.equal((await cli(["share", "revoke", id, "--data", data])).code, 0);
  assert.equal((await cli(["share", "revoke", id, "--data", data])).code, 1);
  assert.equal(parseDuration("30m"), 1_800_000);
  assert.throws(() => parseDuration("1 week"), { code: "usage" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("share ids never start with '-', so a command line never reads one as an option", () => {
  // One id in 64 used to; over 5,000 draws that would be all but certain.
  for (let i = 0; i < 5_000; i++) {
    const id = newShareId();
    assert.match(id, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  }
});

Deno.test("cli share open -o replaces an existing, longer output file with exactly the shared bytes (it used to keep the old tail)", async () => {
  const dir = await Deno.makeTempDir();
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const shared = await sharedPrivateFile({
    dir,
    ownerKey,
    contents: new TextEncoder().encode("the new, short contents"),
    name: "share-open-test",
  });
  try {
    const { link } = shared;
    const out = join(dir, "out.txt");
    await Deno.writeTextFile(out, "an older and much longer file that was already here\n");
    const run = await cli(["share", "open", link, "-o", out]);
    assert.equal(run.code, 0, run.err);
    assert.equal(await Deno.readTextFile(out), "the new, short contents");
  } finally {
    await shared.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Run a command in this process with console.log/error captured. */
async function captured(fn: () => Promise<number>) {
  const err: string[] = [];
  const { log, error } = console;
  console.log = () => {};
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    return { code: await fn(), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** A link to a share at `base` (the keys need not open anything: no node ever answers). */
function linkAt(base: string): string {
  const cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
  const keys = btoa(String.fromCharCode(...new Uint8Array(64))).replaceAll("+", "-")
    .replaceAll("/", "_").replace(/=+$/, "");
  return `${base}/share/${"A".repeat(22)}#c=${cid}&k=${keys}`;
}

Deno.test("cli share open with the link's node down exits 1 saying it cannot reach it, no fetch stack trace", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${listener.addr.port}`;
  listener.close(); // a port nobody listens on
  const run = await captured(() => runShare(["open", linkAt(base)]));
  assert.equal(run.code, 1);
  assert.match(run.err, new RegExp(`^error \\[node_unreachable\\]: cannot reach ${base} \\(`));
});

Deno.test("cli share open from a node that accepts the connection but never answers gives up after the timeout, exit 1", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  try {
    const base = `http://127.0.0.1:${listener.addr.port}`;
    const run = await captured(() => runShare(["open", linkAt(base)], { timeoutMs: 100 }));
    assert.equal(run.code, 1);
    assert.match(
      run.err,
      new RegExp(`^error \\[node_timeout\\]: ${base} did not answer within 0\\.1 s`),
    );
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting;
  }
});

Deno.test("export and share on a data directory with no store refuse (check --data) and create nothing", async () => {
  const dir = await Deno.makeTempDir();
  const typo = join(dir, "typo_dir");
  const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
  for (
    const [name, run] of [
      ["export", () => runExport([cid, "--data", typo])],
      ["share", () => runShare([cid, "--data", typo])],
    ] as const
  ) {
    const errors: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args.join(" "));
    let code: number;
    try {
      code = await run();
    } finally {
      console.error = original;
    }
    assert.equal(code, 1, name);
    assert.match(errors.join("\n"), /store_missing.*check --data/, name);
    await assert.rejects(Deno.stat(typo), Deno.errors.NotFound, `${name} created ${typo}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli share create and share revoke sweep the temporaries a crashed create left in shares/, as the node's start does", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeFile(join(dir, "s.txt"), new TextEncoder().encode("private"));
  const put = await cli(["put", "--init", "--private", "--data", data, join(dir, "s.txt")]);
  const cid = new TextDecoder().decode(put.stdout).trim();
  const shares = join(data, "store", "shares");
  const leftover = async () => {
    const path = join(shares, `${newShareId()}.${crypto.randomUUID()}.tmp`);
    await Deno.mkdir(shares, { recursive: true });
    await Deno.writeFile(path, new Uint8Array(8));
    const old = new Date(Date.now() - 3_600_000); // an hour: no create still in progress
    await Deno.utime(path, old, old);
    return path;
  };
  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
  const beforeCreate = await leftover();
  const shared = await cli(["share", cid, "--data", data, "--url", "http://127.0.0.1:9"]);
  assert.equal(shared.code, 0, shared.err);
  assert.equal(await exists(beforeCreate), false, "swept by share create");
  const id = new TextDecoder().decode(shared.stdout).trim().split("/share/")[1].split("#")[0];
  const beforeRevoke = await leftover();
  assert.equal((await cli(["share", "revoke", id, "--data", data])).code, 0);
  assert.equal(await exists(beforeRevoke), false, "swept by share revoke");
  await Deno.remove(dir, { recursive: true });
});
