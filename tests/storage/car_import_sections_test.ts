/**
 * What `importCar` takes of a CAR's header roots and repeated sections (review s76 F4, F5): a root
 * longer than any CID a reader takes is refused before anything is stored, and a block written in
 * several sections is stored and counted once.
 */
import assert from "node:assert/strict";
import { CarWriter } from "@ipld/car";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { importCar, MAX_CAR_CID_BYTES } from "../../storage/car.ts";
import { joinBytes } from "../_helpers/bytes.ts";
import { MemoryBlockStore } from "./_memory_block_store.ts";

/** A CAR v1 naming `roots` and holding `blocks` in that order (repeats kept), as a stream. */
async function carStream(
  roots: CID[],
  blocks: { cid: CID; bytes: Uint8Array }[],
): Promise<ReadableStream<Uint8Array>> {
  const { writer, out } = CarWriter.create(roots);
  const reading = Array.fromAsync(out);
  for (const block of blocks) await writer.put(block);
  await writer.close();
  return ReadableStream.from([joinBytes(await reading)]);
}

/** A raw block and its CID. */
function rawBlock(text: string) {
  const bytes = new TextEncoder().encode(text);
  return { cid: CID.parse(cidOf(bytes, RAW_CODEC)), bytes };
}

Deno.test("a CAR whose header names a root longer than MAX_CAR_CID_BYTES is invalid_cid, before any block is stored", async () => {
  // An identity root inlining 700,000 bytes: a CID no reader takes, nor a command line passes.
  const huge = CID.createV1(RAW_CODEC, identity.digest(new Uint8Array(700_000).fill(0x61)));
  const block = rawBlock("a block that must not be stored");
  const store = new MemoryBlockStore();
  const refused = await importCar(await carStream([huge], [block]), store).catch((e) => e);
  assert.ok(refused instanceof VeriflowError, String(refused));
  assert.equal(refused.code, "invalid_cid");
  assert.match(refused.message, new RegExp(`limit ${MAX_CAR_CID_BYTES}`));
  assert.ok(refused.message.length < 300, "the message does not carry the whole CID");
  assert.equal(store.puts, 0);
  // A root of the largest length allowed is taken.
  const inline = CID.createV1(RAW_CODEC, identity.digest(new Uint8Array(128).fill(0x62)));
  assert.ok(inline.bytes.length <= MAX_CAR_CID_BYTES);
  const taken = await importCar(await carStream([inline], [block]), new MemoryBlockStore());
  assert.deepEqual(taken.roots, [inline.toString()]);
});

Deno.test("a block written in five sections of a CAR is stored once and counted once", async () => {
  const block = rawBlock("hello duplicate world\n");
  const other = rawBlock("another block");
  const store = new MemoryBlockStore();
  const result = await importCar(
    await carStream([block.cid], [block, block, other, block, block, block]),
    store,
  );
  assert.equal(result.blocks, 2);
  assert.equal(result.bytes, block.bytes.length + other.bytes.length);
  assert.equal(store.puts, 2);
});
