/**
 * Share links (`storage/share_links.ts`): how a link's opener reads a node's refusals, and the
 * temporary files a share create leaves behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageActor } from "../../actors/storage_actor.ts";
import { cidOf } from "../../protocols/cid.ts";
import {
  newShareId,
  SHARE_TEMPORARY_MAX_AGE_MS,
  SHARES_DIR,
  ShareStore,
} from "../../storage/share_links.ts";
import {
  readShareAnsweringThirdChunk,
  readShareAnsweringThirdChunk as openWithRefusedChunk,
} from "./_share_read_fixture.ts";

// ---- "no such share" or "no such block" ---------------------------------------------------------
//
// A share link's opener tells "no such share" from "the share opens, but its node does not serve
// this block". Both are HTTP 404s; the node's error object names which (`share_not_found` or
// `chunk_not_found`, docs/API.md "Errors"). Until now every 404 read as `share_not_found` ("no
// share <id>"), so a node missing one chunk of a shared file sent its reader looking for a revoked
// link.

const errorObject = (code: string, message: string) =>
  new Response(
    JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } }),
    { status: 404, headers: { "content-type": "application/json" } },
  );

Deno.test("a share whose node does not serve one of its blocks fails with chunk_not_found, not share_not_found", async () => {
  const error = await openWithRefusedChunk(() =>
    errorObject("chunk_not_found", "that block is not part of the share")
  );
  assert.ok(error instanceof Error, `the read fails: ${String(error)}`);
  assert.equal((error as { code?: string }).code, "chunk_not_found", error.message);
  assert.match(error.message, /does not serve it/);
});

Deno.test("a 404 naming share_not_found, or one without an error object, is still share_not_found", async () => {
  for (
    const refusal of [
      () => errorObject("share_not_found", "no share"),
      () => new Response("not found", { status: 404 }),
      () => new Response("x".repeat(10_000), { status: 404 }),
    ]
  ) {
    const error = await openWithRefusedChunk(refusal);
    assert.ok(error instanceof Error, `the read fails: ${String(error)}`);
    assert.equal((error as { code?: string }).code, "share_not_found", error.message);
  }
});

// ---- a refusal whose body never comes -----------------------------------------------------------
//
// A share link's reader reads a 404's error object to tell `share_not_found` from
// `chunk_not_found`. When that body does not come (the reader's caller gave up, or the node stalls
// past the link's timeout), the refusal is not known: the reader reports its caller's abort, or
// `node_timeout`, not "no share" (a revoked link).

/** A 404 whose body never comes. */
const stalled404 = () =>
  new Response(new ReadableStream({ pull: () => new Promise(() => {}) }), { status: 404 });

/** Reads a share whose node answers its third chunk with a 404 whose body stalls. */
function readStalled(
  options: { timeoutMs?: number; signal?: AbortSignal },
  onRefusal: () => void,
): Promise<unknown> {
  return readShareAnsweringThirdChunk(() => {
    onRefusal();
    return stalled404();
  }, options);
}

Deno.test("a share read whose caller aborts while a 404's error body is awaited fails with the caller's abort, not share_not_found", async () => {
  const abort = new AbortController();
  const reason = new Error("the caller gave up");
  const error = await readStalled({ signal: abort.signal }, () => abort.abort(reason));
  assert.equal(error, reason, `the caller's abort: ${String(error)}`);
});

Deno.test("a share read whose node stalls a 404's error body past the link's timeout fails with node_timeout, not share_not_found", async () => {
  const error = await readStalled({ timeoutMs: 200 }, () => {});
  assert.ok(error instanceof Error, String(error));
  assert.equal((error as { code?: string }).code, "node_timeout", error.message);
});

// ---- old share temporaries are swept ------------------------------------------------------------
//
// The temporary files a share create writes (`shares/<id>.<uuid>.tmp`, by `writeFileDurably`) are
// swept when they are old. A process killed between writing one and renaming it (`cli.ts share
// create`, the node) left it for good, one per crash: nothing ever removed them. No lock covers
// share writes (`share create` writes while the node runs), so the sweep goes by age: a temporary
// younger than {@link SHARE_TEMPORARY_MAX_AGE_MS} may be a write in progress and is left alone.

/** Names in `dir`, sorted. */
async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

/**
 * A store directory with one share, and the leftovers of crashed creates in `shares/`: `old`
 * temporaries (their mtime set back past the age limit) and a `young` one (written now).
 */
async function storeWithLeftovers() {
  const storeDir = await Deno.makeTempDir();
  const cid = cidOf(new TextEncoder().encode("a shared file"));
  const record = await new ShareStore(storeDir).create(cid, { expiresAt: null, now: Date.now() });
  const shares = join(storeDir, SHARES_DIR);
  const tmp = () => `${newShareId()}.${crypto.randomUUID()}.tmp`;
  const old = [tmp(), tmp()];
  const young = tmp();
  for (const name of [...old, young]) await Deno.writeTextFile(join(shares, name), "{");
  const past = new Date(Date.now() - SHARE_TEMPORARY_MAX_AGE_MS - 60_000);
  for (const name of old) await Deno.utime(join(shares, name), past, past);
  // Not a temporary of a share record, however old: an operator's file is not ours to remove.
  await Deno.writeTextFile(join(shares, "notes.txt"), "mine");
  await Deno.utime(join(shares, "notes.txt"), past, past);
  return { storeDir, shares, record, old, young };
}

Deno.test("s56: opening the shares removes the temporaries crashed creates left, when old", async () => {
  const { storeDir, shares, record, young } = await storeWithLeftovers();
  try {
    const store = await ShareStore.open(storeDir);
    assert.deepEqual(await names(shares), [record.id, young, "notes.txt"].sort());
    assert.deepEqual(await store.get(record.id), record, "the share itself still opens");
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});

Deno.test("s56: a node's storage start sweeps the old share temporaries", async () => {
  const { storeDir, shares, record, young } = await storeWithLeftovers();
  const actor = new StorageActor({ dir: storeDir });
  try {
    await actor.preStart();
    assert.deepEqual(await names(shares), [record.id, young, "notes.txt"].sort());
  } finally {
    await actor.postStop();
    await Deno.remove(storeDir, { recursive: true });
  }
});

Deno.test("s56: a store without shares/ opens without creating it", async () => {
  const storeDir = await Deno.makeTempDir();
  try {
    await ShareStore.open(storeDir);
    assert.deepEqual(await names(storeDir), []);
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});
