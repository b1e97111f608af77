/**
 * What a read of `/ipfs/{cid}` and `/v1/files/{cid}` answers besides the bytes: the Content-Type
 * (recorded, sniffed or named by `?filename=`), attachments and names, caching and CORS headers, a
 * `HEAD` that reads none of the file, service worker scopes, and the error statuses of files the
 * node cannot read whole.
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
import { blockMaker, readCar, startGatewayNode, storageEdge } from "./_gateway_node.ts";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { FileStore } from "../../storage/file_store.ts";

// The node's HTTP surface (gateway, files, edge guards): types no header can carry, `HEAD` of a
// file, CORS-exposed and `Vary` headers, nodes that are not files, and a client relayed by a
// reverse proxy.

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
  // Served keyless to anyone: a page of another origin is never this machine's client, so on a
  // node serving this machine only its `/v1/files` read is refused (review s78 dash, F1).
  const t = await setup({
    allowedOrigins: ["https://app.example"],
    allowUnauthenticatedRemote: true,
  });
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

// The gateway as an IPFS user meets it (Path Gateway and Trustless Gateway specs): the `filename`
// and `download` query parameters, the caching headers of a `416`, content type sniffing and
// recorded names, service worker scopes, and files with inlined (identity) leaves.

/** A node's storage behind the gateway and the file routes, asked in-process as from 127.0.0.1. */
async function setupPublic() {
  const dir = await Deno.makeTempDir();
  const { request, close } = await storageEdge(dir, "s50-gateway-test");
  /** Put `bytes` as a public file, with no name or type recorded; its CID. */
  const put = async (bytes: Uint8Array<ArrayBuffer>): Promise<string> => {
    const { response, body } = await request("/v1/files", { method: "POST", body: bytes });
    assert.equal(response.status, 201);
    return JSON.parse(new TextDecoder().decode(body)).cid;
  };
  return {
    request,
    put,
    close,
  };
}

Deno.test("?filename= names a plain read (inline) and types it, ?download=true makes it an attachment, and a block's or CAR's file takes the name (Path Gateway spec)", async () => {
  const t = await setupPublic();
  try {
    const text = new TextEncoder().encode("hello, a plain text file\n");
    const cid = await t.put(text);
    for (const method of ["GET", "HEAD"]) {
      const named = await t.request(`/ipfs/${cid}?filename=hello.txt`, { method });
      assert.equal(named.response.status, 200, method);
      assert.equal(
        named.response.headers.get("content-disposition"),
        'inline; filename="hello.txt"',
        method,
      );
      // The name's extension types the bytes, as a path's last name does.
      assert.equal(named.response.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.deepEqual(named.body, method === "GET" ? text : new Uint8Array(0));
    }
    const saved = await t.request(`/ipfs/${cid}?filename=report.pdf&download=true`);
    assert.equal(
      saved.response.headers.get("content-disposition"),
      'attachment; filename="report.pdf"',
    );
    assert.equal(saved.response.headers.get("content-type"), "application/pdf");
    const download = await t.request(`/ipfs/${cid}?download=true`);
    assert.match(download.response.headers.get("content-disposition") ?? "", /^attachment\b/);
    // A range of a named file is named too (a browser resuming a download).
    const part = await t.request(`/ipfs/${cid}?filename=hello.txt`, {
      headers: { range: "bytes=0-4" },
    });
    assert.equal(part.response.status, 206);
    assert.equal(part.response.headers.get("content-disposition"), 'inline; filename="hello.txt"');
    // Unnamed, a plain read keeps no disposition (a browser shows what it can).
    const plain = await t.request(`/ipfs/${cid}`);
    assert.equal(plain.response.headers.get("content-disposition"), null);

    // Blocks and CARs stay attachments; a given name replaces `{cid}.bin` / `{cid}.car`.
    const car = await t.request(`/ipfs/${cid}?format=car&filename=hello.car`);
    assert.equal(car.response.status, 200);
    assert.equal(
      car.response.headers.get("content-disposition"),
      'attachment; filename="hello.car"',
    );
    const block = await t.request(`/ipfs/${cid}?format=raw&filename=hello.bin`);
    assert.equal(
      block.response.headers.get("content-disposition"),
      'attachment; filename="hello.bin"',
    );
    const unnamed = await t.request(`/ipfs/${cid}?format=raw`);
    assert.equal(
      unnamed.response.headers.get("content-disposition"),
      `attachment; filename="${cid}.bin"`,
    );
  } finally {
    await t.close();
  }
});

Deno.test("a ?filename= that is not plain ASCII is sent twice (ASCII with _, and RFC 8187 UTF-8), and one with quotes or CR LF never breaks the header nor makes a 500", async () => {
  const t = await setupPublic();
  try {
    const cid = await t.put(new TextEncoder().encode("%PDF-1.4 not really\n"));
    // The spec's own example.
    const cyrillic = await t.request(
      `/ipfs/${cid}?filename=${encodeURIComponent("testтест.pdf")}`,
    );
    assert.equal(cyrillic.response.status, 200);
    assert.equal(
      cyrillic.response.headers.get("content-disposition"),
      `inline; filename="test____.pdf"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.pdf`,
    );
    // A quote, a backslash and CR LF: an injected header, or a header no runtime sends (a 500).
    const hostile = await t.request(
      `/ipfs/${cid}?filename=${encodeURIComponent('a"b\\c\r\nX-Evil: 1.txt')}&download=true`,
    );
    assert.equal(hostile.response.status, 200);
    assert.equal(hostile.response.headers.get("x-evil"), null);
    const disposition = hostile.response.headers.get("content-disposition") ?? "";
    const ascii = disposition.match(/; filename="([^"]*)"/)?.[1];
    assert.equal(ascii, "a_b_c__X-Evil: 1.txt", disposition);
    assert.ok(
      disposition.endsWith(`; filename*=UTF-8''a%22b%5Cc%0D%0AX-Evil%3A%201.txt`),
      disposition,
    );
    assert.match(disposition, /^attachment; /);
  } finally {
    await t.close();
  }
});

Deno.test("a 416 is no representation of the file: it carries no year-long Cache-Control a shared cache would replay for every later read of the URL", async () => {
  const t = await setupPublic();
  try {
    const cid = await t.put(new TextEncoder().encode("twenty-two bytes here\n"));
    const whole = await t.request(`/ipfs/${cid}`);
    assert.match(whole.response.headers.get("cache-control") ?? "", /immutable/);
    for (const method of ["GET", "HEAD"]) {
      const past = await t.request(`/ipfs/${cid}`, { method, headers: { range: "bytes=100-" } });
      assert.equal(past.response.status, 416, method);
      assert.equal(past.response.headers.get("content-range"), "bytes */22", method);
      // A cache keys on the URL, not on Range: stored for a year, this 416 would be every later
      // client's answer to a plain GET of a file that is there.
      assert.equal(past.response.headers.get("cache-control"), null, method);
    }
    // A satisfiable range is the file's own bytes, cached as they are.
    const part = await t.request(`/ipfs/${cid}`, { headers: { range: "bytes=0-3" } });
    assert.equal(part.response.status, 206);
    assert.match(part.response.headers.get("cache-control") ?? "", /immutable/);
  } finally {
    await t.close();
  }
});

Deno.test("a file whose put recorded its name but no type (cli put notes.txt, POST ?name=) is typed by that name at /ipfs/{cid}, as docs/STORAGE.md says the gateway reads it", async () => {
  const t = await setupPublic();
  try {
    for (
      const [name, type] of [
        ["notes.md", "text/markdown; charset=utf-8"],
        ["report.pdf", "application/pdf"],
        ["clip.mp4", "video/mp4"],
      ]
    ) {
      // Bytes no sniffing recognizes (binary, no magic): only the recorded name types them.
      const bytes = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, ...new TextEncoder().encode(name)]);
      const { response, body } = await t.request(`/v1/files?name=${name}`, {
        method: "POST",
        body: bytes,
      });
      assert.equal(response.status, 201);
      const { cid } = JSON.parse(new TextDecoder().decode(body));
      const read = await t.request(`/ipfs/${cid}`);
      assert.equal(read.response.status, 200);
      assert.equal(read.response.headers.get("content-type"), type, name);
      // A name in the URL (or ?filename=) still wins over the recorded one.
      const renamed = await t.request(`/ipfs/${cid}?filename=x.txt`);
      assert.equal(renamed.response.headers.get("content-type"), "text/plain; charset=utf-8");
    }
  } finally {
    await t.close();
  }
});

Deno.test("a plain text file with no recorded type or name is sniffed as text/plain (Path Gateway spec's own example), not bytes a browser only downloads; binary stays octet-stream, a PDF is a PDF", async () => {
  const t = await setupPublic();
  try {
    const encode = (text: string) => new TextEncoder().encode(text);
    const cases: [Uint8Array<ArrayBuffer>, string][] = [
      [encode("hello, a plain text file\n"), "text/plain; charset=utf-8"],
      [
        encode('{"json": "has no magic bytes either", "ünïcödé": true}\n'),
        "text/plain; charset=utf-8",
      ],
      // Latin-1 text is text, but not UTF-8: no charset claimed for it.
      [new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a]), "text/plain"],
      // A PDF's first line is text; its magic bytes say what it is.
      [encode("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), "application/pdf"],
      [new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0]), "image/gif"],
      // A control byte (here NUL, past the first 16 bytes) makes it binary.
      [
        new Uint8Array([...encode("looks like text for a while..."), 0, 1, 2]),
        "application/octet-stream",
      ],
    ];
    for (const [bytes, type] of cases) {
      const cid = await t.put(bytes);
      const read = await t.request(`/ipfs/${cid}`);
      assert.equal(read.response.status, 200);
      assert.equal(
        read.response.headers.get("content-type"),
        type,
        new TextDecoder().decode(bytes),
      );
      assert.deepEqual(read.body, bytes);
    }
  } finally {
    await t.close();
  }
});

Deno.test("a service worker script asked of /ipfs/{cid} itself is 400 (Path Gateway spec): its scope would be /ipfs/, every CID on the node's origin; under /ipfs/{cid}/ it is served", async () => {
  const dir = await Deno.makeTempDir();
  const files = new FileStore(await ChunkStore.open(dir));
  const script = await files.put(
    ReadableStream.from([new TextEncoder().encode("self.onfetch = () => {};\n")]),
  );
  const site = await files.putDirectory([{ name: "sw.js", fileSize: script.size, ...script }]);
  const node = await startGatewayNode(dir);
  try {
    const sw = { headers: { "service-worker": "script" } };
    // `?filename=sw.js` types any public file as a script; from the root its scope is /ipfs/.
    for (const path of [`/ipfs/${script.cid}?filename=sw.js`, `/ipfs/${site.cid}`]) {
      const refused = await node.get(path, sw);
      assert.equal(refused.response.status, 400, path);
      const error = JSON.parse(new TextDecoder().decode(refused.body)).error;
      assert.equal(error.code, "invalid_request", path);
    }
    // The same bytes without the header (a <script>, a download) are served.
    const plain = await node.get(`/ipfs/${script.cid}?filename=sw.js`);
    assert.equal(plain.response.status, 200);
    assert.equal(plain.response.headers.get("content-type"), "text/javascript; charset=utf-8");
    // A script inside a content root scopes that root only, as the spec allows.
    const scoped = await node.get(`/ipfs/${site.cid}/sw.js`, sw);
    assert.equal(scoped.response.status, 200);
    assert.equal(scoped.response.headers.get("content-type"), "text/javascript; charset=utf-8");
  } finally {
    await node.close();
  }
});

Deno.test("a UnixFS file with an inlined (identity CID) leaf, as ipfs add --inline writes a small last chunk, reads whole, by range, by path and as an entity CAR, never 400 invalid_cid", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const make = blockMaker(store);
  const encode = (text: string) => new TextEncoder().encode(text);
  const stored = await make.putRaw(encode("0123456789"));
  const inline = CID.createV1(0x55, identity.digest(encode("abc"))).toString();
  const file = await make.fileNode([{ cid: stored, size: 10 }, { cid: inline, size: 3 }]);
  const site = await make.directory([{ name: "f.txt", cid: file }]);
  // Without raw leaves, the small chunk is a dag-pb leaf node, inlined the same way.
  const leafNode = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "file", data: encode("xyz") }).marshal(),
    Links: [],
  }));
  const inlineNode = CID.createV1(0x70, identity.digest(leafNode)).toString();
  const pbFile = await make.fileNode([{ cid: stored, size: 10 }, { cid: inlineNode, size: 3 }]);
  const node = await startGatewayNode(dir);
  try {
    const pb = await node.get(`/ipfs/${pbFile}`, { headers: { range: "bytes=9-" } });
    assert.equal(pb.response.status, 206, new TextDecoder().decode(pb.body));
    assert.equal(new TextDecoder().decode(pb.body), "9xyz");
    for (const path of [`/ipfs/${file}`, `/ipfs/${site}/f.txt`]) {
      const whole = await node.get(path);
      assert.equal(whole.response.status, 200, new TextDecoder().decode(whole.body));
      assert.equal(new TextDecoder().decode(whole.body), "0123456789abc", path);
      const part = await node.get(path, { headers: { range: "bytes=8-11" } });
      assert.equal(part.response.status, 206, path);
      assert.equal(new TextDecoder().decode(part.body), "89ab", path);
      const tail = await node.get(path, { headers: { range: "bytes=11-" } });
      assert.equal(new TextDecoder().decode(tail.body), "bc", path);
    }
    // An entity's CAR carries the stored blocks; the inlined leaf rides in its parent's link.
    for (const query of ["dag-scope=entity", "entity-bytes=8:11", "entity-bytes=11:*"]) {
      const { response, body } = await node.get(`/ipfs/${file}?format=car&${query}`);
      assert.equal(response.status, 200, `${query}: ${new TextDecoder().decode(body)}`);
      const car = await readCar(body);
      const expected = query === "entity-bytes=11:*" ? [file] : [file, stored];
      assert.deepEqual(car.blocks.map((b) => b.cid), expected, query);
    }
  } finally {
    await node.close();
  }
});

// The gateway and the file routes as a storage / HTTP engineer reads them: what a read answers for
// a public directory on `/v1/files`, and for a file whose recorded type (a pin label, as `cli.ts
// put --mime` writes it, unchecked) is no value an HTTP header can carry.

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/**
 * A store filled by `fill` (as `cli.ts put` fills one), then a node's StorageActor over it behind
 * the file routes and the gateway, asked in-process as from 127.0.0.1.
 */
async function setupFilled<T>(fill: (store: ChunkStore, files: FileStore) => Promise<T>) {
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
  const t = await setupFilled(async (store, files) => {
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
  const t = await setupFilled(async (store, files) => {
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
  const t = await setupFilled(async (store, files) => {
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
