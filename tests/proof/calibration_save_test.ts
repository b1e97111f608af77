/**
 * A calibration profile is saved durably, through a temporary file of its own (review s75 F3):
 * it used to be written to a fixed `<cid>.json.tmp` with no fsync, so a power cut could leave an
 * empty profile and two saves of one model's profile renamed each other's temporary away.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CalibrationProfile, CalibrationStore } from "../../proof/calibration.ts";
import { handProfile } from "../_helpers/hand_profile.ts";

const MODEL = "bafkreigsxewffxxqse4qvkkhxyhealcjjrlwr4bdl7a7u54f53jftbtcm4";

/** A valid profile of {@link MODEL} (figures as a CPU calibration gives them). */
const profile: CalibrationProfile = handProfile(MODEL);

Deno.test("a profile save does not use the fixed <cid>.json.tmp another save is writing, and syncs its data", async () => {
  const dir = await Deno.makeTempDir();
  const syncData = Deno.FsFile.prototype.syncData;
  let synced = 0;
  try {
    const store = await CalibrationStore.open(dir);
    // Another save's temporary, held where the old code wrote its own: it failed (EISDIR) here,
    // as a second save failed when the first renamed the shared name away.
    await Deno.mkdir(join(dir, `${MODEL}.json.tmp`));
    Deno.FsFile.prototype.syncData = function (this: Deno.FsFile) {
      synced++;
      return syncData.call(this);
    };
    const path = await store.save(profile);
    Deno.FsFile.prototype.syncData = syncData;
    assert.ok(synced >= 1, "the profile's bytes were not synced before the rename");
    assert.equal(path, join(dir, `${MODEL}.json`));
    const reopened = await CalibrationStore.open(dir);
    assert.deepEqual(reopened.lookup(MODEL), profile);
    assert.deepEqual(reopened.rejected, []);
  } finally {
    Deno.FsFile.prototype.syncData = syncData;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two saves of one model's profile at once both succeed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await CalibrationStore.open(dir);
    const results = await Promise.allSettled([store.save(profile), store.save(profile)]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled"]);
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
    assert.deepEqual(names, [`${MODEL}.json`], "no temporary left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("opening the profiles removes a save's temporary a crash left long ago, not a fresh one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await CalibrationStore.open(dir);
    const stale = join(dir, `${MODEL}.json.${crypto.randomUUID()}.tmp`);
    const fresh = join(dir, `${MODEL}.json.${crypto.randomUUID()}.tmp`);
    await Deno.writeTextFile(stale, "{");
    await Deno.writeTextFile(fresh, "{");
    const hourAgo = new Date(Date.now() - 60 * 60_000);
    await Deno.utime(stale, hourAgo, hourAgo);
    const store = await CalibrationStore.open(dir);
    assert.deepEqual(store.rejected, []);
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
    assert.deepEqual(
      names,
      [fresh.slice(dir.length + 1)],
      "a save in progress may own the fresh one",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
