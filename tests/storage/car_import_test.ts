/**
 * Importing CARs (`storage/car.ts`, `cli.ts import`): ones other tools or this node's gateway
 * write, and hostile or damaged ones, each refused with a typed error the CLI reports.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CarWriter } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { varint } from "multiformats";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { cidOf, DAG_CBOR_CODEC, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { exportCar, importCar, MAX_CAR_MANIFEST_BYTES } from "../../storage/car.ts";
import {
  BlockTooLargeError,
  CorruptChunkError,
  MAX_CAR_BLOCK_BYTES,
} from "../../storage/errors.ts";
import { concatBytes, joinBytes } from "../_helpers/bytes.ts";
import { collect } from "./_helpers.ts";
import { MemoryBlockStore } from "./_memory_block_store.ts";

// ---- hostile or damaged CARs --------------------------------------------------------------------
//
// A hostile or damaged CAR on import: a section or header that announces more bytes than any block
// may have is refused from its length, before those bytes are read (the reader buffered them all,
// then refused the block, or failed at the end of the input); a CAR cut short or with an unreadable
// section is `invalid_car`, a typed error the CLI reports, never an untyped one.

const KiB = 1024;
const MiB = 1024 * KiB;
/** Bytes per piece of the hostile streams below (a file read's usual piece). */
const PIECE = 64 * KiB;

/** The bytes of a CAR v1 holding `blocks` under `roots`, as `@ipld/car` writes it. */
async function carBytes(roots: string[], blocks: Uint8Array[] = []): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots.map((c) => CID.parse(c)));
  const reading = (async () => {
    const parts: Uint8Array[] = [];
    for await (const part of out) parts.push(part);
    return parts;
  })();
  for (const bytes of blocks) {
    await writer.put({ cid: CID.parse(cidOf(bytes, RAW_CODEC)), bytes });
  }
  await writer.close();
  return joinBytes(await reading);
}

/**
 * `prefix`, then zeros in {@link PIECE}s up to `total` bytes, made as they are pulled, and how
 * many bytes the reader pulled.
 */
function hostileStream(prefix: Uint8Array, total: number) {
  const pulled = { bytes: 0 };
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true;
        pulled.bytes += prefix.length;
        controller.enqueue(prefix);
        return;
      }
      if (pulled.bytes >= total) return controller.close();
      const piece = new Uint8Array(Math.min(PIECE, total - pulled.bytes));
      pulled.bytes += piece.length;
      controller.enqueue(piece);
    },
  }, { highWaterMark: 0 });
  return { stream, pulled };
}

Deno.test("a CAR section that announces a block over the limit is refused from its length, before its bytes are read", async () => {
  const root = cidOf(new Uint8Array([1]), RAW_CODEC);
  const header = await carBytes([root]);
  // A raw block announced at 1 GiB; the input holds 32 MiB of it (the reader would take them all).
  const cid = CID.parse(cidOf(new Uint8Array([2]), RAW_CODEC));
  const announced = cid.bytes.length + 1024 * MiB;
  const { stream, pulled } = hostileStream(
    concatBytes(
      header,
      varint.encodeTo(announced, new Uint8Array(varint.encodingLength(announced))),
      cid.bytes,
    ),
    32 * MiB,
  );
  const store = new MemoryBlockStore();
  const rejected = await importCar(stream, store).catch((e) => e);
  assert.equal(rejected instanceof BlockTooLargeError, true, String(rejected));
  assert.match(rejected.message, new RegExp(`limit ${MAX_CAR_BLOCK_BYTES}`));
  assert.equal(pulled.bytes <= 2 * PIECE, true, `read ${pulled.bytes} bytes before refusing`);
  assert.equal(store.blocks.size, 0);
});

Deno.test("a dag-cbor CAR section that announces a block over the manifest limit is block_too_large, refused from its length, before its bytes are read", async () => {
  const root = cidOf(new Uint8Array([1]), RAW_CODEC);
  const header = await carBytes([root]);
  const cid = CID.parse(cidOf(new Uint8Array([0xa0]), DAG_CBOR_CODEC));
  const announced = cid.bytes.length + MAX_CAR_MANIFEST_BYTES + 1;
  const { stream, pulled } = hostileStream(
    concatBytes(
      header,
      varint.encodeTo(announced, new Uint8Array(varint.encodingLength(announced))),
      cid.bytes,
    ),
    MAX_CAR_MANIFEST_BYTES + 2 * MiB,
  );
  const store = new MemoryBlockStore();
  const rejected = await importCar(stream, store).catch((e) => e);
  assert.equal(rejected instanceof BlockTooLargeError, true, String(rejected));
  assert.equal(rejected.code, "block_too_large");
  assert.match(rejected.message, new RegExp(`limit ${MAX_CAR_MANIFEST_BYTES}\\)`));
  assert.equal(pulled.bytes <= 2 * PIECE, true, `read ${pulled.bytes} bytes before refusing`);
  assert.equal(store.blocks.size, 0);
});

Deno.test("a dag-cbor block over the 2 MiB block limit but under the manifest limit imports (a flat manifest written before manifest trees)", async () => {
  // A CBOR byte string (major type 2, 4-byte length) of 3 MiB: valid dag-cbor.
  const payload = 3 * MiB;
  const bytes = new Uint8Array(5 + payload);
  bytes[0] = 0x5a;
  new DataView(bytes.buffer).setUint32(1, payload);
  assert.ok(bytes.length > MAX_CAR_BLOCK_BYTES && bytes.length <= MAX_CAR_MANIFEST_BYTES);
  const cid = CID.parse(cidOf(bytes, DAG_CBOR_CODEC));
  const store = new MemoryBlockStore();
  const result = await importCar(
    ReadableStream.from([await carOf([cid], [{ cid, bytes }])]),
    store,
  );
  assert.equal(result.blocks, 1);
  assert.equal(await store.has(cid.toString()), true);
});

Deno.test("a CAR whose header names no root is car_without_roots, refused before any block is stored", async () => {
  const store = new MemoryBlockStore();
  const rejected = await importCar(
    ReadableStream.from([await carBytes([], [new Uint8Array([7])])]),
    store,
  ).catch((e) => e);
  assert.equal(rejected instanceof VeriflowError, true, String(rejected));
  assert.equal(rejected.code, "car_without_roots");
  assert.equal(store.blocks.size, 0);
});

Deno.test("a CAR section whose CID announces a multihash longer than any CID is invalid_car, refused before it is read", async () => {
  const root = cidOf(new Uint8Array([1]), RAW_CODEC);
  const header = await carBytes([root]);
  // CIDv1, raw, sha2-256 with a digest announced at 1 GiB.
  const digestLength = 1024 * MiB;
  const cidHead = concatBytes(
    new Uint8Array([1, 0x55, 0x12]),
    varint.encodeTo(digestLength, new Uint8Array(varint.encodingLength(digestLength))),
  );
  const section = cidHead.length + digestLength;
  const { stream, pulled } = hostileStream(
    concatBytes(
      header,
      varint.encodeTo(section, new Uint8Array(varint.encodingLength(section))),
      cidHead,
    ),
    32 * MiB,
  );
  const rejected = await importCar(stream, new MemoryBlockStore()).catch((e) => e);
  assert.equal(rejected instanceof VeriflowError, true, String(rejected));
  assert.equal(rejected.code, "invalid_car");
  assert.equal(pulled.bytes <= 2 * PIECE, true, `read ${pulled.bytes} bytes before refusing`);
});

Deno.test("a CAR header that announces more than any header needs is invalid_car, refused before it is read", async () => {
  const announced = 1024 * MiB;
  const { stream, pulled } = hostileStream(
    varint.encodeTo(announced, new Uint8Array(varint.encodingLength(announced))),
    32 * MiB,
  );
  const rejected = await importCar(stream, new MemoryBlockStore()).catch((e) => e);
  assert.equal(rejected instanceof VeriflowError, true, String(rejected));
  assert.equal(rejected.code, "invalid_car");
  assert.equal(pulled.bytes <= 2 * PIECE, true, `read ${pulled.bytes} bytes before refusing`);
});

Deno.test("a CAR cut short inside a block, or with a section no reader can parse, is invalid_car after the blocks before it", async () => {
  const root = cidOf(new Uint8Array([1]), RAW_CODEC);
  const first = new TextEncoder().encode("a whole block");
  const second = new Uint8Array(1000).fill(7);
  const whole = await carBytes([root], [first, second]);
  const store = new MemoryBlockStore();
  const cut = await importCar(ReadableStream.from([whole.subarray(0, whole.length - 10)]), store)
    .catch((e) => e);
  assert.equal(cut instanceof VeriflowError, true, String(cut));
  assert.equal(cut.code, "invalid_car");
  assert.match(cut.message, /end of data|cut short/i);
  assert.equal(await store.has(cidOf(first, RAW_CODEC)), true);
  // A section whose CID is version 2 (no such CID).
  const header = await carBytes([root]);
  const section = new Uint8Array([4, 2, 0x55, 0x00, 0x00]);
  const bad = await importCar(ReadableStream.from([concatBytes(header, section)]), store)
    .catch((e) => e);
  assert.equal(bad instanceof VeriflowError, true, String(bad));
  assert.equal(bad.code, "invalid_car");
});

Deno.test("a CAR that carries identity blocks imports: each is checked against the bytes its CID inlines and stored nowhere (other writers', and this node's before stop 79, carry them)", async () => {
  // A directory linking a file inlined in an identity CID, as `ipfs add --inline` makes.
  const inlined = new TextEncoder().encode("hi");
  const leaf = CID.createV1(RAW_CODEC, identity.digest(inlined));
  const dirBytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [{ Name: "hi.txt", Tsize: inlined.length, Hash: leaf }],
  }));
  const dir = CID.parse(cidOf(dirBytes, DAG_PB_CODEC));
  const car = await carOf([dir], [{ cid: dir, bytes: dirBytes }, { cid: leaf, bytes: inlined }]);
  const store = new MemoryBlockStore();
  const result = await importCar(ReadableStream.from([car]), store);
  assert.deepEqual(result.roots, [dir.toString()]);
  assert.equal(await store.has(dir.toString()), true);
  assert.equal(store.blocks.size, 1, "an identity block is its CID: nothing stored for it");
  // The CAR the gateway and `exportCar` write for an identity root carries no block (trustless
  // gateway spec): it imports to the same root (`car_identity_test.ts`).
  const exported = await collect(exportCar(leaf.toString(), (c) => store.get(c)));
  const again = await importCar(ReadableStream.from([exported]), new MemoryBlockStore());
  assert.deepEqual(again, { roots: [leaf.toString()], blocks: 0, bytes: 0 });
  // An identity block whose bytes are not the ones its CID inlines is refused.
  const lying = await carOf([dir], [{ cid: leaf, bytes: new TextEncoder().encode("no") }]);
  await assert.rejects(
    () => importCar(ReadableStream.from([lying]), new MemoryBlockStore()),
    CorruptChunkError,
  );
});

/** A CAR v1 of `blocks` under `roots`, each block as given (any CID). */
async function carOf(
  roots: CID[],
  blocks: { cid: CID; bytes: Uint8Array }[],
): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots);
  const reading = collect(ReadableStream.from(out));
  for (const block of blocks) await writer.put(block);
  await writer.close();
  return await reading;
}

Deno.test("a CAR section of an identity CID that announces more bytes than its CID inlines is refused from its length, before they are read", async () => {
  const root = cidOf(new Uint8Array([1]), RAW_CODEC);
  const header = await carBytes([root]);
  // The identity CID of "hi", its section announcing 1 GiB; the input holds 32 MiB of it.
  const cid = CID.createV1(RAW_CODEC, identity.digest(new TextEncoder().encode("hi")));
  const announced = cid.bytes.length + 1024 * MiB;
  const { stream, pulled } = hostileStream(
    concatBytes(
      header,
      varint.encodeTo(announced, new Uint8Array(varint.encodingLength(announced))),
      cid.bytes,
    ),
    32 * MiB,
  );
  const store = new MemoryBlockStore();
  const rejected = await importCar(stream, store).catch((e) => e);
  assert.equal(rejected instanceof CorruptChunkError, true, String(rejected));
  assert.equal(pulled.bytes <= 2 * PIECE, true, `read ${pulled.bytes} bytes before refusing`);
  assert.equal(store.blocks.size, 0);
});

// ---- `cli.ts import` ----------------------------------------------------------------------------
//
// `cli.ts import` of CARs other tools (or this node's gateway) write: a CAR cut short is reported
// as `invalid_car` (exit 1), never an uncaught error; a CAR whose root is an identity CID (the
// gateway's `?format=car` of one) imports and prints that root.

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    err: new TextDecoder().decode(out.stderr),
  };
}

async function cliCarOf(roots: CID[], blocks: { cid: CID; bytes: Uint8Array }[]) {
  const { writer, out } = CarWriter.create(roots);
  const reading = collect(ReadableStream.from(out));
  for (const block of blocks) await writer.put(block);
  await writer.close();
  return await reading;
}

Deno.test("cli import of a CAR cut short inside a block exits 1 with invalid_car, not an uncaught error", async () => {
  const dir = await Deno.makeTempDir();
  const bytes = new Uint8Array(5000).fill(3);
  const cid = CID.parse(cidOf(bytes, RAW_CODEC));
  const car = await cliCarOf([cid], [{ cid, bytes }]);
  await Deno.writeFile(join(dir, "cut.car"), car.subarray(0, car.length - 100));
  const result = await cli(["import", "--init", "--data", join(dir, "data"), join(dir, "cut.car")]);
  assert.equal(result.code, 1, result.err);
  assert.match(result.err, /error \[invalid_car\]: the CAR file is cut short/);
  assert.doesNotMatch(result.err, /Uncaught|\n\s+at /);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli import of the CAR of an identity CID carrying its block (as the gateway wrote it before stop 79) prints its root", async () => {
  const dir = await Deno.makeTempDir();
  const inlined = new TextEncoder().encode("tiny");
  const cid = CID.createV1(RAW_CODEC, identity.digest(inlined));
  await Deno.writeFile(join(dir, "id.car"), await cliCarOf([cid], [{ cid, bytes: inlined }]));
  const result = await cli(["import", "--init", "--data", join(dir, "data"), join(dir, "id.car")]);
  assert.equal(result.code, 0, result.err);
  assert.equal(result.stdout.trim(), cid.toString());
  await Deno.remove(dir, { recursive: true });
});
