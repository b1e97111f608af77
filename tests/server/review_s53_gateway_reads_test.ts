/**
 * Review s53 of the gateway and the file routes as a storage / HTTP engineer reads them: what a
 * read answers for a public directory on `/v1/files`, and for a file whose recorded type (a pin
 * label, as `cli.ts put --mime` writes it, unchecked) is no value an HTTP header can carry. Each
 * test here failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { storageEdge } from "./_gateway_node.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/**
 * A store filled by `fill` (as `cli.ts put` fills one), then a node's StorageActor over it behind
 * the file routes and the gateway, asked in-process as from 127.0.0.1.
 */
async function setup<T>(fill: (store: ChunkStore, files: FileStore) => Promise<T>) {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const filled = await fill(store, new FileStore(store, { chunkSize: 1024 }));
  const { request, close } = await storageEdge(dir, "s53-gateway-test");
  return {
    filled,
    request,
    close,
  };
}

Deno.test("GET /v1/files of a public directory says it is a directory and where its listing is, never 403 key_required as if it were a private file", async () => {
  const t = await setup(async (store, files) => {
    const a = await files.put(ReadableStream.from([text("hello")]));
    const dir = await files.putDirectory([{ name: "a.txt", fileSize: a.size, ...a }]);
    await store.pin(dir.cid);
    return dir.cid;
  });
  try {
    const cid = t.filled;
    for (const method of ["GET", "HEAD"]) {
      const { response, body } = await t.request(`/v1/files/${cid}`, { method });
      assert.notEqual(response.status, 403, `${method}: a public directory is not private`);
      assert.equal(response.status, 501, method);
      if (method === "GET") {
        const error = JSON.parse(decode(body)).error;
        assert.equal(error.code, "not_implemented");
        assert.doesNotMatch(error.message, /private/);
        assert.match(error.message, /directory/);
        assert.ok(error.message.includes(`/ipfs/${cid}/`), error.message);
      }
    }
    // What the message points at answers it.
    const listing = await t.request(`/ipfs/${cid}/`);
    assert.equal(listing.response.status, 200);
    assert.match(decode(listing.body), /a\.txt/);
  } finally {
    await t.close();
  }
});

Deno.test("a recorded type no header can carry (cli put --mime, unchecked) is not the file's Content-Type: both routes serve the file, typed by its name or bytes, never a 500", async () => {
  const bad = ["text/plain\r\nx-injected: 1", "视频/mp4", "text/html\u0000"];
  const t = await setup(async (store, files) => {
    const cids: string[] = [];
    for (const [i, mime] of bad.entries()) {
      // Distinct bytes, so each label is its own file's.
      const { cid } = await files.put(ReadableStream.from([text(`hello ${i}\n`)]));
      // What `cli.ts put notes.txt --mime …` commits: the label as given.
      await store.pin(cid, { name: "notes.txt", mime });
      cids.push(cid);
    }
    return cids;
  });
  try {
    for (const [i, cid] of t.filled.entries()) {
      const gateway = await t.request(`/ipfs/${cid}`);
      assert.equal(gateway.response.status, 200, `gateway, ${JSON.stringify(bad[i])}`);
      assert.equal(gateway.response.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(gateway.response.headers.get("x-injected"), null);
      assert.equal(decode(gateway.body), `hello ${i}\n`);
      const ranged = await t.request(`/ipfs/${cid}`, { headers: { range: "bytes=0-4" } });
      assert.equal(ranged.response.status, 206);
      assert.equal(decode(ranged.body), "hello");
      const file = await t.request(`/v1/files/${cid}`);
      assert.equal(file.response.status, 200, `/v1/files, ${JSON.stringify(bad[i])}`);
      assert.equal(file.response.headers.get("content-type"), "application/octet-stream");
      assert.equal(decode(file.body), `hello ${i}\n`);
    }
  } finally {
    await t.close();
  }
});

Deno.test("a recorded type that is a media type is still every read's Content-Type, on both routes", async () => {
  const t = await setup(async (store, files) => {
    const { cid } = await files.put(ReadableStream.from([text("<p>hi</p>")]));
    await store.pin(cid, { name: "notes.txt", mime: "text/html; charset=utf-8" });
    return cid;
  });
  try {
    const gateway = await t.request(`/ipfs/${t.filled}`);
    assert.equal(gateway.response.status, 200);
    assert.equal(gateway.response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(
      gateway.response.headers.get("content-security-policy"),
      "sandbox; default-src 'none'",
    );
    const file = await t.request(`/v1/files/${t.filled}`);
    assert.equal(file.response.headers.get("content-type"), "text/html; charset=utf-8");
  } finally {
    await t.close();
  }
});
