/**
 * Review s54: one piece of training work is paid once. A trainer whose shard is one repeated
 * sample trains batches that do not depend on its data seed, so a second key of its own can sign
 * the very same trace and pass every challenge; the coordinator takes the first report of a
 * trajectory or delta and leaves out (unpaid, not averaged) any other report of the same.
 * The test failed before the coordinator (`training/_round_run.ts`) refused the copy: both were accepted.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";

Deno.test("review s54: two keys reporting the same training in a round: the first is taken, the copy left out as duplicate_work", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-duplicate-work-" });
  const system = new ActorSystem({ name: "duplicate-work" });
  try {
    const [first, copy] = [Identity.generate(), Identity.generate()];
    const { start, shard, join, ended } = await oneRound(system, dir, {
      challenge: { challengeProbability: 0 },
      steps: 2,
      minTrainers: 2,
      stakes: [[first, 1_000_000], [copy, 1_000_000]],
    });
    // The same delta under both keys.
    const value = (i: number) => 1e-3 * Math.cos(i);
    await join(reportingTrainer(first, start, shard, { value }));
    await join(reportingTrainer(copy, start, shard, { value }));
    const record = await ended();
    assert.equal(record.accepted.length, 1, JSON.stringify(record));
    const left = record.excluded.find((e) => e.key !== record.accepted[0]);
    assert.ok(left, JSON.stringify(record));
    assert.match(left.reason, /^duplicate_work: the same training as /);
    assert.ok([toHex(first.publicKey), toHex(copy.publicKey)].includes(left.key));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
