/**
 * Test fixture: the bytes of a CAR v1 written by `@ipld/car` (the reference writer), for the tests
 * that import hand-built DAGs.
 *
 * @module
 */
import { CarWriter } from "@ipld/car";
import type { CID } from "multiformats/cid";
import { joinBytes } from "../_helpers/bytes.ts";

/** The bytes of a CAR v1 naming `root` and holding `blocks`, as `@ipld/car` writes it. */
export async function carOf(
  root: CID,
  blocks: { cid: CID; bytes: Uint8Array }[],
): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([root]);
  const reading = Array.fromAsync(out);
  for (const block of blocks) await writer.put(block);
  await writer.close();
  return joinBytes(await reading);
}
