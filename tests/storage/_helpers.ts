/** Shared helpers of the storage tests. */
import { storageKey } from "../../protocols/cid.ts";
import { readPackIndex } from "../../storage/pack_format.ts";
import { joinBytes } from "../_helpers/bytes.ts";

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A stream of `bytes` in pieces of `pieceSize` (odd sizes exercise the chunker). */
export function streamOf(bytes: Uint8Array, pieceSize = 10_007): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + pieceSize));
      offset += pieceSize;
    },
  });
}

/** Read a whole stream. */
export async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return joinBytes(await Array.fromAsync(stream));
}

/** Every regular file under `dir`, recursively. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path));
    else if (entry.isFile) out.push(path);
  }
  return out;
}

/** Where a chunk store at `dir` keeps `cid`: its pack file and byte range (read from the headers). */
export async function objectLocation(
  dir: string,
  cid: string,
): Promise<{ path: string; offset: number; length: number }> {
  for (const path of await filesUnder(`${dir}/packs`)) {
    if (!path.endsWith(".pack")) continue;
    const entry = (await readPackIndex(path)).find((e) => e.cid === storageKey(cid));
    if (entry) return { path, offset: entry.offset, length: entry.length };
  }
  throw new Error(`${cid} is in no pack under ${dir}`);
}

/** Flip one bit of the stored bytes of `cid` in the chunk store at `dir`, in place. */
export async function flipObjectBit(dir: string, cid: string, byteIndex = 0): Promise<void> {
  const { path, offset, length } = await objectLocation(dir, cid);
  if (byteIndex >= length) throw new RangeError(`byte ${byteIndex} is outside the object`);
  await flipBit(path, offset + byteIndex);
}

/** Flip one bit of a file in place. */
export async function flipBit(path: string, byteIndex = 0): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[byteIndex] ^= 0x01;
  await Deno.writeFile(path, bytes);
}

/** Pack files of a chunk store at `dir`. */
export async function packFilesUnder(dir: string): Promise<string[]> {
  return (await filesUnder(`${dir}/packs`)).filter((p) => p.endsWith(".pack"));
}

/** In-progress (temp) pack files of a chunk store at `dir`. */
export async function tempFilesUnder(dir: string): Promise<string[]> {
  return (await filesUnder(`${dir}/packs`)).filter((p) => {
    const name = p.slice(p.lastIndexOf("/") + 1);
    return name.startsWith(".") && name.endsWith(".tmp");
  });
}
