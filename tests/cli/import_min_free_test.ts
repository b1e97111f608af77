/**
 * `cli.ts import` keeps the floor of free disk `cli.ts put` and the node's own uploads keep
 * (`storage.putMinFreeBytes`, read by `cli/_put_floor.ts`). Before (review s75 vcrash F3), the
 * import opened the store with no floor and took a disk beside a running node far under it. The
 * disk is the test machine's: a floor far above any disk's size stands for a full one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runExport } from "../../cli/exchange_commands.ts";
import { runLs } from "../../cli/ls_command.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { cli } from "./_cli_child.ts";

/** More free bytes than any disk here has (4 PiB): a floor no write can keep. */
const FLOOR_NO_DISK_KEEPS = 4 * 1024 ** 5;

/** The variable `start` and `put` read the floor from. */
const FLOOR_VARIABLE = "VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES";

Deno.test("import refuses a CAR that would leave less free disk than storage.putMinFreeBytes (disk_full, exit 1) and pins nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-import-floor-" });
  // Each floor is set for its child command only: test modules run side by side in one process.
  const floor = (bytes: number) => ({ env: { [FLOOR_VARIABLE]: String(bytes) } });
  try {
    // A CAR of a small file, exported from a store with no floor.
    const source = join(dir, "source");
    await Deno.writeTextFile(join(dir, "in.txt"), "hello, import floor");
    const put = await cli(
      ["put", "--init", "--data", source, join(dir, "in.txt")],
      undefined,
      floor(0),
    );
    assert.equal(put.code, 0, put.err);
    const car = join(dir, "in.car");
    const exported = await capture(() => runExport(["--data", source, "-o", car, put.out.trim()]));
    assert.equal(exported.code, 0, exported.err);

    const data = join(dir, "node");
    const refused = await cli(
      ["import", "--init", "--data", data, car],
      undefined,
      floor(FLOOR_NO_DISK_KEEPS),
    );
    assert.equal(refused.code, 1, `the import was not refused: ${refused.out} ${refused.err}`);
    assert.match(refused.err, /error \[disk_full\]/);
    assert.match(
      refused.err,
      new RegExp(`keeps ${FLOOR_NO_DISK_KEEPS} \\(storage\\.putMinFreeBytes\\)`),
    );
    const ls = await capture(() => runLs(["--data", data]));
    assert.match(ls.out, /0 files/);

    // With room above the floor the same CAR imports.
    const imported = await cli(["import", "--data", data, car], undefined, floor(0));
    assert.equal(imported.code, 0, imported.err);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
