/**
 * Review s46 of files across peers: what a hostile node can make the other side hold.
 */
import assert from "node:assert/strict";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";

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
