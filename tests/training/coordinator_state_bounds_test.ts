/**
 * The coordinator's state file keeps each round's left-out trainers counted by reason, with a few
 * by key (`training/excluded_summary.ts`), and a state written before that, whose records list
 * every one, still loads (review s73 F4: 255 stakeless joiners made ~37.6 KB a round, ~38 MB
 * rewritten at every save at the 1000 records kept).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { CoordinatorState } from "../../training/coordinator_state.ts";
import { EXCLUDED_SAMPLE, excludedCountsOf } from "../../training/excluded_summary.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";

/** Left out of each old round: 300 stakeless, 40 copies of another's work. */
const STAKELESS = 300;
const COPIES = 40;
const ROUNDS = 3;

Deno.test("an old coordinator.json whose records list every left-out trainer loads, counted by reason and cut to a few, and its next save is small", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-state-bounds-" });
  try {
    const path = join(dir, "coordinator.json");
    const run = {
      arch: TEST_ARCH,
      seed: 0,
      steps: 2,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
    };
    const hex = (n: number) => n.toString(16).padStart(64, "0");
    // As a coordinator before review s73 wrote it: every key, every reason, no counts.
    const history = Array.from({ length: ROUNDS }, (_, round) => ({
      round,
      startModel: `bafkstart${round}`,
      model: `bafkmodel${round}`,
      accepted: [hex(1)],
      excluded: [
        ...Array.from({ length: STAKELESS }, (_, i) => ({
          key: hex(1000 + i),
          reason: "receipt not recorded (insufficient_stake): nothing at stake",
        })),
        ...Array.from({ length: COPIES }, (_, i) => ({
          key: hex(5000 + i),
          reason: `duplicate_work: the same training as ${hex(1).slice(0, 16)}'s`,
        })),
      ],
      heldOutLoss: 5.5,
    }));
    const old = {
      v: 1,
      run,
      round: ROUNDS,
      model: { cid: `bafkmodel${ROUNDS - 1}` },
      history,
      finished: ROUNDS,
      convicted: [],
      initialLoss: 5.6,
    };
    await Deno.writeTextFile(path, JSON.stringify(old));
    const oldBytes = (await Deno.stat(path)).size;

    const state = new CoordinatorState(path, run);
    const loaded = await state.load();
    assert.ok(loaded !== undefined, "the old state loads");
    assert.equal(loaded.round, ROUNDS);
    assert.equal(loaded.history.length, ROUNDS);
    for (const record of loaded.history) {
      assert.ok(
        record.excluded.length <= EXCLUDED_SAMPLE,
        `${record.excluded.length} left-out trainers kept by key`,
      );
      assert.deepEqual(excludedCountsOf(record), [
        { reason: "receipt not recorded (insufficient_stake)", count: STAKELESS },
        { reason: "duplicate_work", count: COPIES },
      ]);
      assert.equal(record.heldOutLoss, 5.5);
    }

    await state.save(loaded);
    const newBytes = (await Deno.stat(path)).size;
    assert.ok(
      newBytes * 10 < oldBytes,
      `saved again: ${newBytes} B (was ${oldBytes} B with every key)`,
    );
    // And what it saved reads back the same.
    assert.deepEqual((await new CoordinatorState(path, run).load())?.history, loaded.history);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
