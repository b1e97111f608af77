/**
 * Review s45 of the node's HTTP surface (gateway, files, edge guards): each test here failed on
 * the code before its fix.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { blockMaker } from "./_gateway_node.ts";

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };

async function setup(edge?: Partial<EdgeConfig>) {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "s45-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, chunkSize: 1024 }) as never,
  });
  const reads: string[] = [];
  const port = (): GatewayStorage => {
    const inner = storageGateway(storage);
    return {
      ...inner,
      read: (cid, range) => {
        reads.push(`${cid} ${range.start}-${range.end}`);
        return inner.read(cid, range);
      },
    };
  };
  const app = createApp({ inference: {} as InferencePort, edge });
  app.route("/v1", fileRoutes(port));
  app.route("/", gatewayRoutes(port));
  const request = (path: string, init?: RequestInit) => app.request(path, init, LOOPBACK as never);
  return {
    reads,
    request,
    close: async () => {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function put(
  t: Awaited<ReturnType<typeof setup>>,
  bytes: Uint8Array<ArrayBuffer>,
  query = "",
  init?: RequestInit,
) {
  const res = await t.request(`/v1/files${query}`, { method: "POST", body: bytes, ...init });
  return { status: res.status, body: await res.json() };
}

Deno.test("a put's mime that no Content-Type can carry is refused, so its file never reads as a 500", async () => {
  const t = await setup();
  try {
    for (const mime of ["text/plain%0d%0aX-Evil:%201", "text/%C4%80plain", "not-a-type"]) {
      const refused = await put(t, new Uint8Array([1, 2, 3]), `?mime=${mime}`);
      assert.equal(refused.status, 400, mime);
      assert.equal(refused.body.error.param, "mime");
    }
    // A media type with parameters is still taken, and served as given.
    const ok = await put(t, new Uint8Array([1, 2, 4]), "?mime=text/plain;%20charset=utf-8");
    assert.equal(ok.status, 201);
    for (const path of [`/v1/files/${ok.body.cid}`, `/ipfs/${ok.body.cid}`]) {
      const read = await t.request(path);
      assert.equal(read.status, 200, path);
      assert.equal(read.headers.get("content-type"), "text/plain; charset=utf-8");
      await read.body?.cancel();
    }
  } finally {
    await t.close();
  }
});

Deno.test("a HEAD of /v1/files/{cid} answers the GET's headers and reads none of the file", async () => {
  const t = await setup();
  try {
    const { body } = await put(t, new Uint8Array(5000).fill(9));
    t.reads.length = 0;
    const head = await t.request(`/v1/files/${body.cid}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "5000");
    const ranged = await t.request(`/v1/files/${body.cid}`, {
      method: "HEAD",
      headers: { range: "bytes=10-19" },
    });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), "bytes 10-19/5000");
    assert.deepEqual(t.reads, []);
  } finally {
    await t.close();
  }
});

Deno.test("an allowed origin's page can read a range answer's Content-Range, ETag and the gateway's X-Ipfs headers", async () => {
  const t = await setup({ allowedOrigins: ["https://app.example"] });
  try {
    const { body } = await put(t, new Uint8Array(5000).fill(9));
    for (const path of [`/ipfs/${body.cid}`, `/v1/files/${body.cid}`]) {
      const part = await t.request(path, {
        headers: { origin: "https://app.example", range: "bytes=0-9" },
      });
      assert.equal(part.status, 206);
      await part.body?.cancel();
      const exposed = (part.headers.get("access-control-expose-headers") ?? "")
        .split(",").map((h) => h.trim().toLowerCase());
      const wanted = path.startsWith("/ipfs")
        ? ["content-range", "etag", "x-ipfs-path", "x-ipfs-roots", "retry-after"]
        : ["content-range", "x-content-cid", "retry-after"];
      for (const name of wanted) assert.ok(exposed.includes(name), `${path}: ${name}`);
    }
  } finally {
    await t.close();
  }
});

Deno.test("GET /v1/files of a UnixFS symlink or HAMT shard is an error status, never a 200 whose body is cut", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const symlink = await make.unixfsNode("symlink", new TextEncoder().encode("/etc/passwd"));
  const hamt = await make.unixfsNode("hamt-sharded-directory");
  const leaf = await make.putRaw(new TextEncoder().encode("hello"));
  const file = await make.fileNode([{ cid: leaf, size: 5 }, { cid: leaf, size: 5 }]);
  const system = new ActorSystem({ name: "s45-non-file" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir }) as never,
  });
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", fileRoutes(() => storageGateway(storage)));
  try {
    for (const cid of [symlink, hamt]) {
      const response = await app.request(`/v1/files/${cid}`, {}, LOOPBACK as never);
      // Before: 200 with a Content-Length, then a body that fails mid-way ("not a file").
      const body = await response.json();
      assert.equal(response.status, 501, cid);
      assert.equal(body.error.code, "not_implemented");
    }
    const read = await app.request(`/v1/files/${file}`, {}, LOOPBACK as never);
    assert.equal(read.status, 200);
    assert.equal(new TextDecoder().decode(await read.arrayBuffer()), "hellohello");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an AVIF or HEIF image without a recorded type or a name is sniffed as an image, not video/mp4", async () => {
  const t = await setup();
  try {
    const isoBmff = (brand: string) =>
      new Uint8Array([0, 0, 0, 0x1c, ...new TextEncoder().encode(`ftyp${brand}\0\0\0\0mif1miaf`)]);
    for (
      const [brand, type] of [
        ["avif", "image/avif"],
        ["heic", "image/heif"],
        ["isom", "video/mp4"],
      ] as const
    ) {
      const { body } = await put(t, isoBmff(brand));
      const read = await t.request(`/ipfs/${body.cid}`);
      await read.body?.cancel();
      assert.equal(read.headers.get("content-type"), type, brand);
    }
  } finally {
    await t.close();
  }
});

Deno.test("with allowed origins, an answer to a request without Origin still varies on Origin, so no cache hands it to a CORS fetch", async () => {
  const t = await setup({ allowedOrigins: ["https://app.example"] });
  try {
    const { body } = await put(t, new Uint8Array(100).fill(1));
    for (const path of [`/ipfs/${body.cid}`, `/ipfs/${body.cid}?format=raw`]) {
      const plain = await t.request(path); // an <img>, a <video>: no Origin
      await plain.body?.cancel();
      assert.equal(plain.headers.get("cache-control"), "public, max-age=29030400, immutable");
      assert.equal(plain.headers.get("access-control-allow-origin"), null);
      const vary = (plain.headers.get("vary") ?? "").toLowerCase().split(/\s*,\s*/);
      assert.ok(vary.includes("origin"), `${path}: Vary ${vary}`);
      assert.ok(vary.includes("accept"), `${path}: Vary ${vary}`);
    }
  } finally {
    await t.close();
  }
});

Deno.test("without API keys, a client relayed by a reverse proxy on this machine is not served as this machine's", async () => {
  for (const allowUnauthenticatedRemote of [false, true]) {
    const t = await setup({ allowedHosts: ["proxy.example"], allowUnauthenticatedRemote });
    try {
      const { body } = await put(t, new Uint8Array([1, 2, 3]));
      // The proxy is a loopback peer; the client it relays is anyone's, and names the proxy.
      const proxied = await t.request(`/v1/files/${body.cid}`, {
        headers: { host: "proxy.example" },
      });
      assert.equal(proxied.status, allowUnauthenticatedRemote ? 200 : 403);
      if (!allowUnauthenticatedRemote) {
        assert.equal((await proxied.json()).error.code, "api_key_required");
      } else await proxied.body?.cancel();
      const local = await t.request(`/v1/files/${body.cid}`, {
        headers: { host: "127.0.0.1:8080" },
      });
      assert.equal(local.status, 200);
      await local.body?.cancel();
    } finally {
      await t.close();
    }
  }
});

Deno.test("curl --data-binary's default form type is not recorded as the file's: the gateway still sniffs it", async () => {
  const t = await setup();
  try {
    const webm = new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const { body } = await put(t, webm, "?name=clip.webm", {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    const read = await t.request(`/ipfs/${body.cid}`);
    await read.body?.cancel();
    assert.equal(read.headers.get("content-type"), "video/webm");
    const file = await t.request(`/v1/files/${body.cid}`);
    await file.body?.cancel();
    assert.equal(file.headers.get("content-type"), "application/octet-stream");
  } finally {
    await t.close();
  }
});
