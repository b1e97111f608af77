/**
 * The private tier and share links (`storage/private_tier.ts`, `storage/share_links.ts`):
 * encryption under a file key, what a reader's machine is exposed to once a file is decrypted,
 * and what a hostile node can make the other side hold.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cidDigest, cidFromDigest, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { decodeManifest, encodeManifest, type PrivateManifest } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { AuthenticationError, KeyRequiredError } from "../../storage/errors.ts";
import { runShare } from "../../cli/exchange_commands.ts";
import { FileStore } from "../../storage/file_store.ts";
import { exportFileKeys, FileCipher, OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { sharedPrivateFile } from "../cli/_shared_private_file.ts";
import { runGet } from "../../cli/get_command.ts";
import { filesUnder, flipObjectBit, pseudoRandomBytes, streamOf } from "./_helpers.ts";

// ---- private files ------------------------------------------------------------------------------

const PATTERN = "VERIFLOW-SECRET-PLAINTEXT-PATTERN-7f3a";

function secretFile(repeats: number): Uint8Array {
  return new TextEncoder().encode(`${PATTERN} line of private text\n`.repeat(repeats));
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("a private file's plaintext, name and size appear in no stored byte", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 4096 });
  const key = await OwnerKey.fromSecret(crypto.getRandomValues(new Uint8Array(32)));
  const data = secretFile(500);
  const { cid, tier } = await files.put(streamOf(data), { key, name: `${PATTERN}.txt` });
  assert.equal(tier, "private");
  const needle = new TextEncoder().encode(PATTERN.slice(0, 16));
  const stored = await filesUnder(dir);
  let scanned = 0;
  for (const path of stored) {
    const bytes = await Deno.readFile(path);
    scanned += bytes.length;
    assert.equal(contains(bytes, needle), false, `plaintext found in ${path}`);
  }
  assert.ok(scanned >= data.length, "every stored byte was scanned, ciphertext included");
  // The scan can fail: the same file stored publicly does leak the pattern.
  const { cid: publicCid } = await files.put(streamOf(data));
  const leaks = await Promise.all(
    (await filesUnder(dir)).map(async (p) => contains(await Deno.readFile(p), needle)),
  );
  assert.ok(leaks.some(Boolean));
  assert.notEqual(publicCid, cid);
  // The owner reads it back; the sealed metadata opens.
  assert.deepEqual(await files.bytes(cid, { key }), data);
  const info = await files.stat(cid, { key });
  assert.equal(info.size, data.length);
  assert.equal(info.name, `${PATTERN}.txt`);
  // Without a key, a storage node sees only the chunk list.
  const blind = await files.stat(cid);
  assert.equal(blind.size, null);
  assert.equal(blind.name, undefined);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a wrong key is a typed authentication error, never garbage", async () => {
  const dir = await Deno.makeTempDir();
  const files = new FileStore(await ChunkStore.open(dir), { chunkSize: 4096 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(1));
  const wrong = await OwnerKey.fromSecret(new Uint8Array(32).fill(2));
  const { cid } = await files.put(streamOf(secretFile(100)), { key });
  await assert.rejects(
    files.get(cid, { key: wrong }),
    (e: AuthenticationError) => e.code === "authentication_failed",
  );
  await assert.rejects(files.get(cid), KeyRequiredError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ciphertext chunks cannot be swapped within a file without failing authentication", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(3));
  const { cid } = await files.put(streamOf(secretFile(200)), { key });
  const manifest = decodeManifest(await store.get(cid));
  // Overwrite chunk 1's file with chunk 0's bytes: the CID check catches it first...
  await flipObjectBit(dir, manifest.chunks[0], 5);
  await assert.rejects(
    files.bytes(cid, { key }),
    (e: { code: string }) => e.code === "corrupt_chunk",
  );
  // ...and decryption is bound to the chunk index too (AAD), independently of the CID check.
  const fileCipher = await key.newFile();
  const sealed = await fileCipher.encryptChunk(0, new Uint8Array([1, 2, 3]));
  await assert.rejects(fileCipher.decryptChunk(1, sealed), AuthenticationError);
  assert.deepEqual(await fileCipher.decryptChunk(0, sealed), new Uint8Array([1, 2, 3]));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("each private put uses a fresh salt, so equal files give different ciphertext", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 4096 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(4));
  const a = await files.put(streamOf(secretFile(50)), { key });
  const b = await files.put(streamOf(secretFile(50)), { key });
  assert.notEqual(a.cid, b.cid);
  const ma = decodeManifest(await store.get(a.cid));
  const mb = decodeManifest(await store.get(b.cid));
  assert.notDeepEqual(ma.chunks, mb.chunks);
  await Deno.remove(dir, { recursive: true });
});

// ---- as a cryptographer reads it ----------------------------------------------------------------
//
// The private tier and share links read as a cryptographer would: a nonce never repeats under a
// file key, whatever the caller does; ciphertext moved between files, positions or owners never
// opens; a share's expiry is a time, never silently "until revoked".

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("a file cipher never encrypts twice under one nonce: a reused or earlier chunk index, a second seal, and a reading cipher are refused", async () => {
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const writer = await owner.newFile();
  const first = await writer.encryptChunk(0, text("attack at dawn"));
  // GCM under a repeated (key, nonce) leaks the XOR of the plaintexts and the tag key.
  await assert.rejects(writer.encryptChunk(0, text("attack at dusk")), { code: "nonce_reuse" });
  await writer.encryptChunk(2, text("gaps are fine"));
  await assert.rejects(writer.encryptChunk(1, text("but never back")), { code: "nonce_reuse" });
  await writer.sealInfo({ size: 1, chunkSize: 1 });
  await assert.rejects(writer.sealInfo({ size: 2, chunkSize: 1 }), { code: "nonce_reuse" });

  // A cipher rebuilt from a stored salt (the owner's, or a share link's keys) only reads: its
  // nonces were spent when the file was put, in another process perhaps.
  const reader = await owner.file(writer.salt);
  assert.deepEqual(await reader.decryptChunk(0, first), text("attack at dawn"));
  await assert.rejects(reader.encryptChunk(0, text("attack at dusk")), { code: "nonce_reuse" });
  await assert.rejects(reader.sealInfo({ size: 1, chunkSize: 1 }), { code: "nonce_reuse" });
  const shared = await FileCipher.fromFileKeys(
    writer.salt,
    await exportFileKeys(owner, writer.salt),
  );
  assert.deepEqual(await shared.decryptChunk(0, first), text("attack at dawn"));
  await assert.rejects(shared.encryptChunk(5, text("x")), { code: "nonce_reuse" });

  // The put path still writes and reads, with many chunks in flight.
  const files = new FileStore(await ChunkStore.open(await Deno.makeTempDir()), {
    chunkSize: 1024,
    concurrency: 4,
  });
  const data = pseudoRandomBytes(20_000, 9);
  const { cid } = await files.put(streamOf(data, 777), { key: owner });
  assert.deepEqual(await files.bytes(cid, { key: owner }), data);
});

Deno.test("a manifest a storage peer rebuilds from ciphertext of another position, file or owner never opens", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(1));
  const other = await OwnerKey.fromSecret(new Uint8Array(32).fill(2));
  const data = pseudoRandomBytes(3 * 1024, 3);
  const a = await files.put(streamOf(data), { key: owner });
  const b = await files.put(streamOf(data), { key: owner }); // same plaintext, same owner
  const c = await files.put(streamOf(data), { key: other });
  const manifest = async (cid: string) => decodeManifest(await store.get(cid)) as PrivateManifest;
  const [ma, mb, mc] = [await manifest(a.cid), await manifest(b.cid), await manifest(c.cid)];
  assert.ok(ma.chunks.every((chunk) => !mb.chunks.includes(chunk)), "equal files look unrelated");
  const forged = async (chunks: string[]) => {
    const key = await store.put(encodeManifest({ ...ma, chunks }));
    return cidFromDigest(cidDigest(key), DAG_CBOR_CODEC);
  };
  const swapped = [ma.chunks[1], ma.chunks[0], ma.chunks[2]];
  for (
    const chunks of [swapped, [mb.chunks[0], ma.chunks[1], ma.chunks[2]], [...mc.chunks]]
  ) {
    const cid = await forged(chunks);
    await assert.rejects(files.bytes(cid, { key: owner }), { code: "authentication_failed" });
  }
  // Truncated or extended: the sealed size no longer matches the chunk count.
  for (const chunks of [ma.chunks.slice(0, 2), [...ma.chunks, ma.chunks[2]]]) {
    await assert.rejects(files.bytes(await forged(chunks), { key: owner }), {
      code: "invalid_manifest",
    });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a share whose expiry is not a time (NaN, Infinity) is refused, not recorded as open until revoked", async () => {
  const dir = await Deno.makeTempDir();
  const shares = new ShareStore(dir);
  const cid = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
  const now = 1_700_000_000_000;
  // `now + parseDuration("99…9d")` is Infinity; a date parsed wrong is NaN. JSON writes both as
  // `null`, the record's "until revoked".
  for (const expiresAt of [Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(shares.create(cid, { expiresAt, now }), RangeError);
  }
  const listed = [];
  try {
    for await (const entry of Deno.readDir(`${dir}/shares`)) listed.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  assert.deepEqual(listed, [], "no record was written");
  const record = await shares.create(cid, { expiresAt: now + 1000, now });
  await shares.valid(record.id, now + 999);
  await assert.rejects(shares.valid(record.id, now + 1000), { code: "share_expired" });
  await Deno.remove(dir, { recursive: true });
});

// ---- decrypted plaintext on the reader's machine ------------------------------------------------
//
// The private tier and share links: what a private file's plaintext, once decrypted by `get -o` or
// `share open -o`, is exposed to on the reader's own machine.

const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

/** Run a command in this process with its console output dropped; its exit code and stderr. */
async function quietly(fn: () => Promise<number>): Promise<{ code: number; err: string }> {
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

Deno.test({
  name:
    "a private file's plaintext from get -o or share open -o is its owner's only: a new file is 0600, an existing one keeps its mode (it became 0644)",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const keyFile = join(dir, "owner.key");
    await Deno.writeFile(keyFile, secret, { mode: 0o600 });
    const ownerKey = await OwnerKey.fromSecret(secret);
    const store = join(dir, "store");
    const plaintext = text("the salary list");
    const shared = await sharedPrivateFile({
      dir: store,
      ownerKey,
      contents: plaintext,
      name: "review-s45-private",
      now: 0,
    });
    try {
      const { cid, link } = shared;
      const reads: [string, (out: string) => Promise<number>][] = [
        ["get", (out) => runGet([cid, "-o", out, "--data", dir, "--key-file", keyFile])],
        ["share open", (out) => runShare(["open", link, "-o", out])],
      ];
      for (const [command, read] of reads) {
        // A file the user made owner-only before writing the plaintext into it.
        const kept = join(dir, `${command.replace(" ", "-")}-kept.txt`);
        await Deno.writeTextFile(kept, "placeholder", { mode: 0o600 });
        await Deno.chmod(kept, 0o600);
        const first = await quietly(() => read(kept));
        assert.equal(first.code, 0, first.err);
        assert.deepEqual(await Deno.readFile(kept), plaintext);
        assert.equal(
          (await modeOf(kept)).toString(8),
          "600",
          `${command} -o made an owner-only file readable by others`,
        );
        // A new file: the plaintext of a private file is not written for everyone to read.
        const fresh = join(dir, `${command.replace(" ", "-")}-new.txt`);
        const second = await quietly(() => read(fresh));
        assert.equal(second.code, 0, second.err);
        assert.deepEqual(await Deno.readFile(fresh), plaintext);
        assert.equal(
          ((await modeOf(fresh)) & 0o077).toString(8),
          "0",
          `${command} -o wrote a private file's plaintext readable by others`,
        );
      }
    } finally {
      await shared.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("share revoke is durable before it says so: the shares directory is fsynced after the record goes (a power cut could bring a revoked link back)", async () => {
  const dir = await Deno.makeTempDir();
  const shares = new ShareStore(dir);
  const record = await shares.create(
    "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    { expiresAt: null, now: 0 },
  );
  const sharesDir = join(dir, "shares");
  // What the file system is asked, in order: removals, and fsyncs of what was opened.
  const events: string[] = [];
  const { open, remove } = Deno;
  Deno.open = async (path, options) => {
    const file = await open(path, options);
    const sync = file.sync.bind(file);
    file.sync = async () => {
      events.push(`sync ${path}`);
      await sync();
    };
    return file;
  };
  Deno.remove = async (path, options) => {
    await remove(path, options);
    events.push(`remove ${path}`);
  };
  try {
    assert.equal(await shares.revoke(record.id), true);
  } finally {
    Deno.open = open;
    Deno.remove = remove;
  }
  const removed = events.indexOf(`remove ${join(sharesDir, record.id)}`);
  assert.ok(removed >= 0, events.join("; "));
  assert.ok(
    events.slice(removed + 1).includes(`sync ${sharesDir}`),
    `the removal was never made durable: ${events.join("; ")}`,
  );
  await assert.rejects(shares.valid(record.id, 0), { code: "share_not_found" });
  await Deno.remove(dir, { recursive: true });
});

/** `script` runs a command on a pseudo-terminal and copies what the terminal shows to stdout. */
async function hasScript(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  try {
    const out = await new Deno.Command("script", { args: ["--version"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * `share open LINK --password` on a pseudo-terminal, `typed` entered once the prompt shows:
 * everything the terminal showed, and the exit code.
 */
async function openOnTerminal(
  link: string,
  typed: string,
): Promise<{ screen: string; code: number }> {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [Deno.execPath(), "run", "-A", cli, "share", "open", link, "--password"]
    .map(quote).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qfec", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const shown: Uint8Array[] = [];
  const reader = child.stdout.getReader();
  const seen = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      shown.push(value);
    }
  })();
  const screen = () => new TextDecoder().decode(concat(shown));
  // Typed once the prompt is up (typed before, the terminal would echo it whatever the command
  // does); a guard, not a deadline the test races: the prompt comes in well under a second.
  const started = Date.now();
  while (!screen().includes("password:")) {
    if (Date.now() - started > 30_000) throw new Error(`no password prompt: ${screen()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const writer = child.stdin.getWriter();
  await writer.write(text(`${typed}\r`));
  await writer.close();
  const { code } = await child.status;
  await seen;
  return { screen: screen(), code };
}

Deno.test({
  name:
    "share open --password on a terminal does not echo the password: it showed in the terminal, its scrollback and any recording of it",
  ignore: !await hasScript(),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(5));
      const files = new FileStore(await ChunkStore.open(dir));
      const { cid } = await files.put(ReadableStream.from([text("secret")]), { key: owner });
      const password = "hunter2-corr\u00e9ct-horse";
      // Nothing listens on port 9 of 127.0.0.1: the right password unwraps the keys, then the
      // node cannot be reached; a wrong one fails before any request.
      const { link } = await createShareLink({
        cid,
        owner,
        files,
        shares: new ShareStore(dir),
        baseUrl: "http://127.0.0.1:9",
        expiresAt: null,
        now: 0,
        password,
      });
      const wrong = await openOnTerminal(link, "not-the-password");
      assert.equal(wrong.code, 1, wrong.screen);
      assert.match(wrong.screen, /wrong password for this share link/);
      assert.ok(!wrong.screen.includes("not-the-password"), JSON.stringify(wrong.screen));
      // Typed with a slip mended by backspace (DEL), as a person types it.
      const right = await openOnTerminal(link, `${password}x\x7f`);
      assert.equal(right.code, 1, right.screen);
      assert.match(right.screen, /node_unreachable/, "the typed password opened the keys");
      assert.ok(!right.screen.includes(password), `echoed: ${JSON.stringify(right.screen)}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- what a hostile share node can make the opener hold -----------------------------------------
//
// Files across peers: what a hostile node can make the other side hold.

const MiB = 1024 * 1024;

/** A body of `total` zero bytes, made 1 MiB at a time as it is read; `pulled` counts them. */
function hugeBody(total: number): { body: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= total) return controller.close();
      pulled += MiB;
      controller.enqueue(new Uint8Array(MiB));
    },
  }, { highWaterMark: 0 });
  return { body, pulled: () => pulled };
}

Deno.test("a share link's node cannot make the opener take in more than a block: an endless manifest or chunk is refused as block_too_large after a bounded read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
    const files = new FileStore(await ChunkStore.open(dir), { chunkSize: 1024 });
    const plain = crypto.getRandomValues(new Uint8Array(3000));
    const { cid } = await files.put(ReadableStream.from([plain]), { key: owner });
    const { link } = await createShareLink({
      cid,
      owner,
      files,
      shares: new ShareStore(dir),
      baseUrl: "http://127.0.0.1:9", // never contacted: the fetch below answers
      expiresAt: null,
      now: 0,
    });
    const manifestKey = storageKey(cid);
    const manifestBytes = await (await ChunkStore.open(dir)).get(manifestKey);
    /** The node: honest on the manifest unless `hostileManifest`, endless on every chunk. */
    const node = (hostileManifest: boolean) => {
      const bodies: (() => number)[] = [];
      const fetcher = (input: string | URL | Request) => {
        const wanted = storageKey(String(input).split("/").pop()!);
        if (wanted === manifestKey && !hostileManifest) {
          return Promise.resolve(new Response(manifestBytes as Uint8Array<ArrayBuffer>));
        }
        const { body, pulled } = hugeBody(256 * MiB);
        bodies.push(pulled);
        return Promise.resolve(new Response(body));
      };
      const pulled = () => bodies.reduce((sum, p) => sum + p(), 0);
      return { fetch: fetcher as typeof fetch, pulled };
    };

    // The chunks of a 1 KiB-chunk file are 1 KiB and a tag: a node sending more is cut off.
    const chunks = node(false);
    const { stream } = await openShareLink(link, { fetch: chunks.fetch });
    await assert.rejects(
      new Response(stream).arrayBuffer(),
      (error: Error & { code?: string }) => error.code === "block_too_large",
    );
    assert.ok(chunks.pulled() <= 20 * MiB, `the opener read ${chunks.pulled()} bytes of chunks`);

    // The manifest itself is bounded too.
    const manifest = node(true);
    await assert.rejects(
      openShareLink(link, { fetch: manifest.fetch }),
      (error: Error & { code?: string }) => error.code === "block_too_large",
    );
    assert.ok(manifest.pulled() <= 20 * MiB, `the opener read ${manifest.pulled()} bytes`);

    // An honest node's link still opens.
    const honest = (input: string | URL | Request) =>
      files.manifest(cid).then(async () => {
        const wanted = storageKey(String(input).split("/").pop()!);
        const store = await ChunkStore.open(dir);
        return new Response(await store.get(wanted) as Uint8Array<ArrayBuffer>);
      });
    const opened = await openShareLink(link, { fetch: honest as typeof fetch });
    assert.deepEqual(new Uint8Array(await new Response(opened.stream).arrayBuffer()), plain);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
