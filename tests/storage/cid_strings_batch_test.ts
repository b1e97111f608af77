/**
 * `cidV1Strings` (`storage/dag_pb_reader.ts`): the CID text of many links made in one pass, which
 * the range walk uses for a file node's leaves (stop 77). It must give, for every CID form a link
 * may carry, the very string `cidV1String` gives one at a time: the store's index is keyed by it.
 */
import assert from "node:assert/strict";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { sha256 } from "multiformats/hashes/sha2";
import { cidV1String, cidV1Strings } from "../../storage/dag_pb_reader.ts";

/** Codecs of the CIDs below: raw, dag-pb, dag-cbor. */
const RAW = 0x55;
const DAG_PB = 0x70;
const DAG_CBOR = 0x71;

Deno.test("cidV1Strings gives each link's CIDv1 text as cidV1String does: raw, dag-pb, dag-cbor, a CIDv0, identity CIDs of any length", async () => {
  const hashes: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    const bytes = new TextEncoder().encode(`block ${i}`);
    const digest = await sha256.digest(bytes);
    const codec = [RAW, DAG_PB, DAG_CBOR][i % 3];
    hashes.push(CID.createV1(codec, digest).bytes);
    if (i % 5 === 0) hashes.push(CID.createV0(digest).bytes); // `Qm…`: a bare multihash
    // Identity CIDs carry their block: lengths that end on every bit offset of base32.
    hashes.push(CID.createV1(RAW, identity.digest(bytes.subarray(0, i % 9))).bytes);
  }
  const one = hashes.map((hash) => cidV1String(hash));
  assert.deepEqual(cidV1Strings(hashes), one);
  // The same as the multiformats library writes each, a CIDv0 as its CIDv1.
  assert.deepEqual(one, hashes.map((hash) => CID.decode(hash).toV1().toString()));
  assert.deepEqual(cidV1Strings([]), []);
});
