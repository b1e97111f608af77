/**
 * `ChallengedChunks.whenReleased` (`actors/_challenged_chunks.ts`): a gateway read already
 * streaming waits at a chunk under challenge until its hold ends, instead of failing mid-stream
 * (review s81 vaudit2, F3); a chunk held by two audits waits for both; the reader's abort ends the
 * wait.
 */
import assert from "node:assert/strict";
import { ChallengedChunks } from "../../actors/_challenged_chunks.ts";

const CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

Deno.test("a read of a held chunk waits for the last hold on it to end", async () => {
  const challenged = new ChallengedChunks();
  await challenged.whenReleased(CID); // not held: at once
  const first = challenged.hold([CID]);
  const second = challenged.hold([CID]);
  let done = false;
  const wait = challenged.whenReleased(CID).then(() => done = true);
  await Promise.resolve();
  assert.equal(challenged.waiting, 1);
  first();
  await Promise.resolve();
  assert.equal(done, false, "another audit still holds it");
  second();
  await wait;
  assert.equal(done, true);
  assert.equal(challenged.waiting, 0);
});

Deno.test("the reader's abort ends its wait", async () => {
  const challenged = new ChallengedChunks();
  const release = challenged.hold([CID]);
  const abort = new AbortController();
  const wait = challenged.whenReleased(CID, abort.signal);
  abort.abort(new Error("client gone"));
  await assert.rejects(wait, /client gone/);
  assert.equal(challenged.waiting, 0);
  release();
});
