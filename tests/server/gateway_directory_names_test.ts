/**
 * The gateway over directories as an outside review sent them (review s74, on a real HTTP server
 * on 127.0.0.1): entry names no path reaches (empty, `.`, `..`, `a/b`, NUL, a control character,
 * a repeated name) are listed by their own CID and say why; a path through a big directory is
 * decoded once and then answered from the routes' cache; an `Accept` naming only formats the
 * gateway cannot write (DAG-JSON, DAG-CBOR, TAR) is 406, not the file's bytes.
 */
import assert from "node:assert/strict";
import { UnixfsDirectoryCache } from "../../storage/unixfs_directory_cache.ts";
import {
  directoryIndex,
  directoryIndexParts,
  INDEX_ROWS_PER_PART,
} from "../../server/gateway_directory.ts";
import { newGatewayStore, startGatewayNode } from "./_gateway_node.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("a listing links entries no path reaches (empty, ., .., a/b, NUL, a control character, a repeated name) by their own CID and says why; the first of a repeated name is the one a path reaches", async () => {
  const { dir, put, make } = await newGatewayStore();
  const hostile = ["", ".", "..", "a/b", "nul\0x", "bell\x07"];
  const cids = new Map<string, string>();
  for (const name of hostile) cids.set(name, await put(`content of ${JSON.stringify(name)}`));
  const firstDup = await put("the first dup");
  const secondDup = await put("the second dup");
  const ok = await put("fine");
  const root = await make.directory([
    ...hostile.map((name) => ({ name, cid: cids.get(name)! })),
    { name: "dup", cid: firstDup },
    { name: "dup", cid: secondDup },
    { name: "ok.txt", cid: ok },
  ]);
  const node = await startGatewayNode(dir);
  try {
    const { response, body } = await node.get(`/ipfs/${root}/`);
    assert.equal(response.status, 200);
    const page = decode(body);
    const rows = page.split("<tr>").slice(2); // past the header row
    const rowOf = (cid: string) => rows.find((row) => row.includes(`<code>${cid}</code>`)) ?? "";
    for (const name of hostile) {
      const row = rowOf(cids.get(name)!);
      assert.ok(row.includes(`href="/ipfs/${cids.get(name)}"`), `${JSON.stringify(name)}: ${row}`);
      assert.match(row, /not reachable by path: .*; linked by its CID/, JSON.stringify(name));
    }
    for (const escape of ['href="./"', 'href="./."', 'href="./.."', 'href="./a%2Fb"']) {
      assert.ok(!page.includes(escape), `no ${escape} in the page`);
    }
    assert.ok(rowOf(secondDup).includes(`href="/ipfs/${secondDup}"`), rowOf(secondDup));
    assert.match(rowOf(secondDup), /repeats an earlier name \(a path reaches the first\)/);
    assert.ok(rowOf(firstDup).includes('href="./dup"'), rowOf(firstDup));
    assert.match(rowOf(firstDup), /a path reaches this entry/);
    assert.ok(rowOf(ok).includes('href="./ok.txt"'));
    assert.ok(!/not reachable|path reaches/.test(rowOf(ok)), rowOf(ok));
    // What the page says a path reaches is what the path serves.
    assert.equal(decode((await node.get(`/ipfs/${root}/dup`)).body), "the first dup");
    for (const cid of [...cids.values(), secondDup]) {
      const read = await node.get(`/ipfs/${cid}`);
      assert.equal(read.response.status, 200, `${cid} is read by its CID`);
    }
  } finally {
    await node.close();
  }
});

Deno.test("the gateway decodes a directory once for repeated paths through it: the routes' cache answers later requests", async () => {
  const { dir, put, make } = await newGatewayStore();
  const entries = [];
  for (let i = 0; i < 300; i++) entries.push({ name: `f${i}`, cid: await put(`file ${i}`) });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  const root = await make.directory(entries);
  const directories = new UnixfsDirectoryCache();
  const node = await startGatewayNode(dir, { routes: { directories } });
  try {
    for (let i = 0; i < 3; i++) {
      const { response, body } = await node.get(`/ipfs/${root}/f299`);
      assert.equal(response.status, 200);
      assert.equal(decode(body), "file 299");
    }
    assert.deepEqual(directories.counts, { hits: 2, misses: 1 });
  } finally {
    await node.close();
  }
});

Deno.test("an Accept naming only DAG-JSON, DAG-CBOR, JSON, CBOR or TAR is 406 naming what the gateway sends; with */* besides, the file's bytes", async () => {
  const { dir, put, make } = await newGatewayStore();
  const file = await put("plain words");
  const root = await make.directory([{ name: "a.txt", cid: file }]);
  const node = await startGatewayNode(dir);
  try {
    for (
      const accept of [
        "application/vnd.ipld.dag-json",
        "application/vnd.ipld.dag-cbor",
        "application/json",
        "application/cbor",
        "application/x-tar",
        "application/vnd.ipld.dag-json, application/x-tar;q=0.5",
      ]
    ) {
      const { response, body } = await node.get(`/ipfs/${root}/a.txt`, { headers: { accept } });
      assert.equal(response.status, 406, accept);
      const error = JSON.parse(decode(body)).error;
      assert.equal(error.code, "not_acceptable", accept);
      assert.match(error.message, /application\/vnd\.ipld\.raw.*application\/vnd\.ipld\.car/);
    }
    const mixed = await node.get(`/ipfs/${root}/a.txt`, {
      headers: { accept: "application/vnd.ipld.dag-json, */*;q=0.1" },
    });
    assert.equal(mixed.response.status, 200);
    assert.equal(decode(mixed.body), "plain words");
  } finally {
    await node.close();
  }
});

Deno.test("a big directory's listing is built in pieces of INDEX_ROWS_PER_PART rows, each made when read, and holds every row", () => {
  const count = INDEX_ROWS_PER_PART * 3 + 1;
  const entries = Array.from({ length: count }, (_, i) => ({
    name: `f${i}`,
    cid: `bafk${i}`,
    tsize: i,
  }));
  let rowsBuilt = 0;
  const counted = entries.map((entry) => ({
    ...entry,
    get cid() {
      rowsBuilt++;
      return entry.cid;
    },
  }));
  const parts = directoryIndexParts("/ipfs/bafy/", counted);
  parts.next(); // the head
  assert.equal(rowsBuilt, 0, "the head builds no row");
  parts.next();
  assert.equal(rowsBuilt, INDEX_ROWS_PER_PART, "one piece builds its rows only");
  const rest = [...parts];
  assert.equal(rest.length, 3 + 1, "three more pieces of rows, then the tail");
  assert.equal(rowsBuilt, count);
  const page = directoryIndex("/ipfs/bafy/", entries);
  assert.equal(page.split("<tr>").length - 1, count + 1, "every row, and the header row");
  assert.ok(page.endsWith("</tbody></table>\n</body></html>"));
});

Deno.test("a listing of more than INDEX_ROWS_PER_PART entries is streamed whole, without a Content-Length; a small one keeps its length", async () => {
  const { dir, put, make } = await newGatewayStore();
  const leaf = await put("same leaf");
  const names = Array.from({ length: INDEX_ROWS_PER_PART * 2 + 7 }, (_, i) => `n${i}`).sort();
  const big = await make.directory(names.map((name) => ({ name, cid: leaf })));
  const small = await make.directory([{ name: "a", cid: leaf }]);
  const node = await startGatewayNode(dir);
  try {
    const { response, body } = await node.get(`/ipfs/${big}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), null);
    const page = decode(body);
    assert.equal(page.split("<tr>").length - 1, names.length + 1, "every row and the header");
    assert.ok(page.endsWith("</body></html>"));
    const head = await node.get(`/ipfs/${big}/`, { method: "HEAD" });
    assert.equal(head.response.status, 200);
    assert.equal(head.body.length, 0);
    const one = await node.get(`/ipfs/${small}/`);
    assert.equal(one.response.headers.get("content-length"), `${one.body.length}`);
  } finally {
    await node.close();
  }
});
