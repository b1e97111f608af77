/**
 * Review s50 of the gateway as an IPFS user meets it (Path Gateway and Trustless Gateway specs):
 * the `filename` and `download` query parameters, the caching headers of a `416`, content type
 * sniffing and recorded names, service worker scopes, and files with inlined (identity) leaves.
 * Each test here failed on the code before its fix.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { blockMaker, readCar, startGatewayNode, storageEdge } from "./_gateway_node.ts";

/** A node's storage behind the gateway and the file routes, asked in-process as from 127.0.0.1. */
async function setup() {
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
  const t = await setup();
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
  const t = await setup();
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
  const t = await setup();
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
  const t = await setup();
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
  const t = await setup();
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
