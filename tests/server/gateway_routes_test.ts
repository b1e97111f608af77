/**
 * The trustless gateway (`/ipfs/{cid}`) and share links (`/share/{id}/{cid}`) on a real HTTP
 * server on 127.0.0.1: the reference client `@helia/verified-fetch` reads a file through it,
 * `@ipld/car` reads its CARs block by block, plain reads answer ranges, and a share link opens a
 * private file without the owner's key until it expires or is revoked.
 */
import assert from "node:assert/strict";
import { CarBlockIterator } from "@ipld/car";
import { createVerifiedFetchWithHelia } from "@helia/verified-fetch";
import { withHTTP } from "@helia/http";
import { createHeliaLight } from "helia";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { cidDigest } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { digestOf, equalBytes } from "../../storage/_hash.ts";
import { collect, pseudoRandomBytes } from "../storage/_helpers.ts";
import { importerRoot } from "../storage/_ipfs_reference.ts";

const OWNER_SECRET = new Uint8Array(32).fill(7);

/** A node's storage and HTTP edge on 127.0.0.1, with a clock the test moves. */
async function startNode() {
  const dir = await Deno.makeTempDir();
  const ownerKey = await OwnerKey.fromSecret(OWNER_SECRET);
  const system = new ActorSystem({ name: "gateway-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, ownerKey }) as never,
  });
  const clock = { now: 1_000_000 };
  const requests: string[] = [];
  const app = createApp({ inference: {} as InferencePort });
  const port = () => storageGateway(storage);
  app.route("/v1", fileRoutes(port));
  app.route("/", gatewayRoutes(port, { now: () => clock.now }));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req, info) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search} ${req.headers.get("accept") ?? ""}`);
    return app.fetch(req, info);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  const put = async (bytes: Uint8Array, options?: { private?: boolean; mime?: string }) =>
    await (await storage.ask<PutHandle>({
      type: "put",
      source: ReadableStream.from([bytes]),
      ...options,
    })).done;
  return {
    dir,
    url,
    clock,
    requests,
    put,
    close: async () => {
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "@helia/verified-fetch with the node as its only gateway gets the file's bytes, verified",
  // Helia keeps timers of its own (session and routing housekeeping) past stop().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const node = await startNode();
    try {
      const bytes = pseudoRandomBytes(700_000, 31); // 3 raw leaves under a dag-pb root
      const { cid } = await node.put(bytes);
      const helia = createHeliaLight();
      // With no router besides the fallback gateway, helia's provider search never ends: a
      // router that finds nothing lets it fall back to the gateway (helia 7.1).
      helia.addRouter({ name: "none", async *findProviders() {} } as never);
      await withHTTP(helia, {
        delegatedRouters: [],
        recursiveGateways: [node.url],
        allowInsecure: true,
        allowLocal: true,
      }).start();
      const verifiedFetch = await createVerifiedFetchWithHelia(helia);
      try {
        const response = await verifiedFetch(`ipfs://${cid}`);
        assert.equal(response.status, 200);
        assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes);
      } finally {
        await verifiedFetch.stop();
        await helia.stop();
      }
      const raw = node.requests.filter((r) => r.includes("format=raw"));
      assert.equal(raw.length, 4, `the root and its 3 leaves, block by block: ${node.requests}`);
    } finally {
      await node.close();
    }
  },
});

Deno.test("a CAR from /ipfs/{cid}?format=car (and Accept) is read by @ipld/car, every block verifying, the same blocks as the importer's", async () => {
  const node = await startNode();
  try {
    const bytes = pseudoRandomBytes(1_000_000, 32);
    const { cid } = await node.put(bytes);
    const reference = await importerRoot([{ content: bytes }]);
    assert.equal(cid, reference.root);
    for (
      const init of [
        { path: `/ipfs/${cid}?format=car` },
        { path: `/ipfs/${cid}`, accept: "application/vnd.ipld.car" },
      ]
    ) {
      const response = await fetch(`${node.url}${init.path}`, {
        headers: init.accept ? { accept: init.accept } : {},
      });
      assert.equal(response.status, 200);
      assert.match(
        response.headers.get("content-type")!,
        /^application\/vnd\.ipld\.car; version=1/,
      );
      const car = await CarBlockIterator.fromIterable(response.body!);
      assert.deepEqual((await car.getRoots()).map(String), [cid]);
      const seen: string[] = [];
      for await (const block of car) {
        assert.ok(
          equalBytes(cidDigest(block.cid.toString()), await digestOf(block.bytes)),
          `${block.cid} verifies`,
        );
        assert.deepEqual(block.bytes, reference.blocks.blocks.get(block.cid.toString()));
        seen.push(block.cid.toString());
      }
      assert.deepEqual(seen.sort(), [...reference.blocks.blocks.keys()].sort());
    }
    const raw = await fetch(`${node.url}/ipfs/${cid}`, {
      headers: { accept: "application/vnd.ipld.raw" },
    });
    assert.equal(raw.headers.get("content-type"), "application/vnd.ipld.raw");
    assert.deepEqual(new Uint8Array(await raw.arrayBuffer()), reference.blocks.blocks.get(cid));
    const missing = await fetch(`${node.url}/ipfs/${reference.root.replace("a", "b")}?format=raw`);
    await missing.body?.cancel();
    assert.ok(missing.status === 400 || missing.status === 404);
  } finally {
    await node.close();
  }
});

Deno.test("plain GET /ipfs/{cid} serves a public file with ranges (206, 416) and refuses a private one", async () => {
  const node = await startNode();
  try {
    const bytes = pseudoRandomBytes(600_000, 33);
    const { cid } = await node.put(bytes, { mime: "video/webm" });
    const whole = await fetch(`${node.url}/ipfs/${cid}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    assert.equal(whole.headers.get("content-type"), "video/webm");
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    const part = await fetch(`${node.url}/ipfs/${cid}`, {
      headers: { range: "bytes=262000-262299" },
    });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 262000-262299/${bytes.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(262000, 262300));
    const past = await fetch(`${node.url}/ipfs/${cid}`, { headers: { range: "bytes=600000-" } });
    await past.body?.cancel();
    assert.equal(past.status, 416);
    const secret = await node.put(new TextEncoder().encode("secret"), { private: true });
    const refused = await fetch(`${node.url}/ipfs/${secret.cid}`);
    await refused.body?.cancel();
    assert.equal(refused.status, 403);
  } finally {
    await node.close();
  }
});

Deno.test("a share link opens a private file without the owner's key; it fails after expiry, after revocation, and without its password", async () => {
  const node = await startNode();
  try {
    const bytes = pseudoRandomBytes(300_000, 34);
    const { cid } = await node.put(bytes, { private: true });
    // What `cli.ts share` does, beside the running node (same data directory).
    const owner = await OwnerKey.fromSecret(OWNER_SECRET);
    const files = new FileStore(await ChunkStore.open(node.dir));
    const shares = new ShareStore(node.dir);
    const share = (options: { expiresAt: number | null; password?: string }) =>
      createShareLink({
        cid,
        owner,
        files,
        shares,
        baseUrl: node.url,
        now: node.clock.now,
        ...options,
      });

    const { link, record } = await share({ expiresAt: node.clock.now + 60_000 });
    assert.ok(!link.includes(toBase64(OWNER_SECRET)), "the owner's secret is not in the link");
    const opened = await openShareLink(link);
    assert.equal(opened.info.size, bytes.length);
    assert.deepEqual(await collect(opened.stream), bytes);
    assert.ok(
      node.requests.every((r) => !r.includes("#") && !r.includes("k=")),
      "the fragment (the key) never reached the node",
    );
    // A share opens its file only: another stored chunk is refused.
    const other = await node.put(pseudoRandomBytes(10, 35));
    const stray = await fetch(`${link.split("#")[0]}/${other.cid}`);
    await stray.body?.cancel();
    assert.equal(stray.status, 404);
    // A share's answer is a stored file's bytes on the node's (and its dashboard's) origin: it
    // carries the headers every other answer of stored bytes does (review s61).
    const manifest = await fetch(`${link.split("#")[0]}/${cid}`);
    await manifest.body?.cancel();
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get("x-content-type-options"), "nosniff");
    assert.equal(manifest.headers.get("content-security-policy"), "sandbox; default-src 'none'");

    node.clock.now = record.expiresAt!;
    await assert.rejects(openShareLink(link), { code: "share_expired" });

    const forever = await share({ expiresAt: null });
    assert.deepEqual(await collect((await openShareLink(forever.link)).stream), bytes);
    assert.equal(await shares.revoke(forever.record.id), true);
    await assert.rejects(openShareLink(forever.link), { code: "share_not_found" });
    // The refusal has the shape of every other HTTP error (docs/API.md, "Errors").
    const gone = await fetch(`${forever.link.split("#")[0]}/${forever.record.cid}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(await gone.json(), {
      error: {
        message: `no share ${forever.record.id}`,
        type: "invalid_request_error",
        param: null,
        code: "share_not_found",
      },
    });

    const locked = await share({ expiresAt: null, password: "correct horse" });
    assert.match(locked.link, /#c=[a-z0-9]+&p=/);
    await assert.rejects(openShareLink(locked.link), { code: "password_required" });
    await assert.rejects(openShareLink(locked.link, { password: "wrong" }), {
      code: "authentication_failed",
    });
    const unlocked = await openShareLink(locked.link, { password: "correct horse" });
    assert.deepEqual(await collect(unlocked.stream), bytes);
  } finally {
    await node.close();
  }
});

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}
