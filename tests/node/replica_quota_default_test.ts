/**
 * What peers may place here with the default config (review s71, finding 4): with no
 * `storage.quotaBytes` there was no cap of its own, so one peer's `put_chunk`s of junk took the
 * whole disk down to `storage.replicaMinFreeBytes`, for good (replica records are never
 * released). Now the default config caps it at {@link DEFAULT_REPLICA_QUOTA_BYTES}; how a store
 * refuses past its cap is `tests/storage/replica_quota_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_REPLICA_QUOTA_BYTES, parseNodeConfig, replicaQuotaOf } from "../../node/config.ts";

Deno.test("with the default config what peers may place here is capped; a quota or an explicit cap still decides", () => {
  const defaults = parseNodeConfig().storage;
  assert.equal(replicaQuotaOf(defaults), DEFAULT_REPLICA_QUOTA_BYTES);
  assert.ok(Number.isFinite(DEFAULT_REPLICA_QUOTA_BYTES) && DEFAULT_REPLICA_QUOTA_BYTES > 0);
  assert.equal(replicaQuotaOf({ ...defaults, quotaBytes: 1_000_001 }), 500_000);
  assert.equal(replicaQuotaOf({ ...defaults, replicaQuotaBytes: 7 }), 7);
});
