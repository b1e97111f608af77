/**
 * The proof suite's model fixtures: a measurement must run the cheaper copy it names.
 * @module
 */
import assert from "node:assert/strict";
import { cheaperCopy, variantName } from "./_models.ts";

Deno.test("cheaperCopy: two noise levels with one display name are two different models", async () => {
  // 0.01 % and 0.03 % both print as "noise 0.0 %" (review s74 measured the first twice).
  const low = { noise: 0.0001 }, high = { noise: 0.0003 };
  assert.equal(variantName(low), variantName(high), "the names collide, the copies must not");
  const [a, b] = await Promise.all([cheaperCopy(low), cheaperCopy(high)]);
  assert.notEqual(a.info.cid, b.info.cid);
  const [c, d] = await Promise.all([cheaperCopy(low), cheaperCopy({ noise: 0.0001, seed: 2 })]);
  assert.equal(c, a, "the same variant is built once");
  assert.notEqual(d.info.cid, a.info.cid, "another seed is another model");
});
