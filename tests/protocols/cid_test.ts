import assert from "node:assert/strict";
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { identity } from "multiformats/hashes/identity";
import { cidDigest, cidOf, isCid, RAW_CODEC, SHA2_256_CODE } from "../../protocols/cid.ts";
import { sha256 } from "../../protocols/hash.ts";

Deno.test("isCid accepts the CIDv1 sha2-256 strings cidOf produces", () => {
  const cid = cidOf(new TextEncoder().encode("hello"));
  assert.equal(isCid(cid), true);
  assert.equal(cidDigest(cid).length, 32);
});

Deno.test("isCid returns false, without throwing, for every string cidDigest rejects", () => {
  const v0 = CID.createV0(Digest.create(SHA2_256_CODE, sha256(new Uint8Array([1]))))
    .toString();
  const identityHashed = CID.createV1(RAW_CODEC, identity.digest(new Uint8Array([1]))).toString();
  for (const bad of ["", "not a cid", "bafkrei", v0, identityHashed]) {
    assert.throws(() => cidDigest(bad), { code: "invalid_cid" });
    assert.equal(isCid(bad), false, bad);
  }
});
