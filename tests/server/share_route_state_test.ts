/**
 * Review s76 on the share route and private blocks (`server/gateway_routes.ts`):
 * - refused share reads (404 `share_not_found`, 410 `share_expired`) were returned, not thrown,
 *   so `/metrics` never counted them;
 * - `GET /share/{id}` (what a browser asks for a printed link) answered "no route";
 * - a private file's manifest and CAR were served with a year-long `public, immutable` header.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, newShareId, ShareStore } from "../../storage/share_links.ts";

const OWNER_SECRET = new Uint8Array(32).fill(5);

/** A node's storage and gateway on 127.0.0.1 with a clock the test moves, and its edge counters. */
async function withNode(
  run: (node: {
    url: string;
    clock: { now: number };
    stats: EdgeStats;
    share: (expiresAt: number | null) => Promise<{ link: string; id: string; cid: string }>;
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const ownerKey = await OwnerKey.fromSecret(OWNER_SECRET);
  const system = new ActorSystem({ name: "share-route-state-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, ownerKey }) as never,
  });
  const clock = { now: 1_000_000 };
  const stats = new EdgeStats();
  const app = createApp({ inference: {} as InferencePort, stats });
  app.route("/", gatewayRoutes(() => storageGateway(storage), { now: () => clock.now }));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (r, i) => app.fetch(r, i),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  try {
    const { cid } = await (await storage.ask<PutHandle>({
      type: "put",
      source: ReadableStream.from([new TextEncoder().encode("a private file")]),
      private: true,
    })).done;
    const share = async (expiresAt: number | null) => {
      const { link, record } = await createShareLink({
        cid,
        owner: ownerKey,
        files: new FileStore(await ChunkStore.open(dir)),
        shares: new ShareStore(dir),
        baseUrl: url,
        expiresAt,
        now: clock.now,
      });
      return { link, id: record.id, cid };
    };
    await run({ url, clock, stats, share });
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function errorCode(response: Response): Promise<string | undefined> {
  return (await response.json())?.error?.code;
}

Deno.test("s76: refused share reads (never made, expired) are counted under their codes in the edge's refusals", async () => {
  await withNode(async ({ url, clock, stats, share }) => {
    const { id, cid } = await share(clock.now + 60_000);
    const unknown = await fetch(`${url}/share/${newShareId()}/${cid}`);
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), "share_not_found");
    assert.equal(stats.refused.get("share_not_found"), 1);
    clock.now += 60_000; // exactly at expiresAt: expired
    const expired = await fetch(`${url}/share/${id}/${cid}`);
    assert.equal(expired.status, 410);
    assert.equal(await errorCode(expired), "share_expired");
    assert.equal(stats.refused.get("share_expired"), 1);
  });
});

Deno.test("s76: GET /share/{id} answers the share's state and how to open it, never a key", async () => {
  await withNode(async ({ url, clock, share }) => {
    const { link, id } = await share(clock.now + 60_000);
    const live = await fetch(`${url}/share/${id}`);
    assert.equal(live.status, 200);
    assert.equal(live.headers.get("cache-control"), "private, no-store");
    const text = await live.text();
    const body = JSON.parse(text);
    assert.equal(body.state, "live");
    assert.equal(body.share, id);
    assert.match(body.open, /share open -/);
    assert.ok(!text.includes(link.split("k=")[1]), "the keys are not in the answer");
    const unknown = await fetch(`${url}/share/${newShareId()}`);
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), "share_not_found");
    clock.now += 60_000;
    const expired = await fetch(`${url}/share/${id}`);
    assert.equal(expired.status, 410);
    assert.equal(await errorCode(expired), "share_expired");
  });
});

Deno.test("s76: a private file's manifest and CAR from /ipfs are private, no-store, not cached for a year", async () => {
  await withNode(async ({ url, share }) => {
    const { cid } = await share(null);
    for (const format of ["raw", "car"]) {
      const response = await fetch(`${url}/ipfs/${cid}?format=${format}`);
      await response.body?.cancel();
      assert.equal(response.status, 200, format);
      assert.equal(response.headers.get("cache-control"), "private, no-store", format);
    }
  });
});
