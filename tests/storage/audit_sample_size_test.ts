/**
 * A `StorageAuditor` whose `sampleSize` no challenge can carry (above `MAX_PROVE_CIDS`, the most a
 * `storage.prove` names) is refused when it is made: before, each audit sent a challenge the
 * holder's side refuses as malformed, and the auditor blamed the holder (`no_response`) for its
 * own request (stop 66 storage red team).
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { MAX_PROVE_CIDS } from "../../protocols/storage_messages.ts";
import { StorageAuditor } from "../../storage/audit.ts";

const base = {
  identity: Identity.generate(),
  reference: () => Promise.reject(new Error("not read")),
};

Deno.test("a StorageAuditor is refused a sampleSize no challenge can carry, or that samples nothing", () => {
  for (const sampleSize of [MAX_PROVE_CIDS + 1, 0, -1, 1.5, NaN, Infinity]) {
    assert.throws(
      () => new StorageAuditor({ ...base, sampleSize }),
      (error: unknown) =>
        error instanceof RangeError && /sampleSize/.test(error.message) &&
        error.message.includes(String(MAX_PROVE_CIDS)),
      `sampleSize ${sampleSize}`,
    );
  }
  for (const sampleSize of [1, 4, MAX_PROVE_CIDS, undefined]) {
    new StorageAuditor({ ...base, sampleSize });
  }
});
