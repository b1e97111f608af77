/**
 * `cli.ts import` of CARs other tools (or this node's gateway) write: a CAR cut short is reported
 * as `invalid_car` (exit 1), never an uncaught error; a CAR whose root is an identity CID (the
 * gateway's `?format=car` of one) imports and prints that root.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CarWriter } from "@ipld/car";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import { collect } from "./_helpers.ts";

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

async function carOf(roots: CID[], blocks: { cid: CID; bytes: Uint8Array }[]) {
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
  const car = await carOf([cid], [{ cid, bytes }]);
  await Deno.writeFile(join(dir, "cut.car"), car.subarray(0, car.length - 100));
  const result = await cli(["import", "--data", join(dir, "data"), join(dir, "cut.car")]);
  assert.equal(result.code, 1, result.err);
  assert.match(result.err, /error \[invalid_car\]: the CAR file is cut short/);
  assert.doesNotMatch(result.err, /Uncaught|\n\s+at /);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cli import of the CAR of an identity CID (as the gateway writes it) prints its root", async () => {
  const dir = await Deno.makeTempDir();
  const inlined = new TextEncoder().encode("tiny");
  const cid = CID.createV1(RAW_CODEC, identity.digest(inlined));
  await Deno.writeFile(join(dir, "id.car"), await carOf([cid], [{ cid, bytes: inlined }]));
  const result = await cli(["import", "--data", join(dir, "data"), join(dir, "id.car")]);
  assert.equal(result.code, 0, result.err);
  assert.equal(result.stdout.trim(), cid.toString());
  await Deno.remove(dir, { recursive: true });
});
