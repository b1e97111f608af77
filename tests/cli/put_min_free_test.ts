/**
 * `cli.ts put` keeps the floor of free disk the node's own uploads keep (`storage.putMinFreeBytes`),
 * read from where `put` finds the node: the `VERIFLOW_CONFIG` file and
 * `VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES`, else the node's default. Before, the operator's `put`
 * opened the store with no floor and could fill the disk under a running node. The disk is the
 * test machine's: a floor far above any disk's size stands for a full one, so nothing is filled.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runLs } from "../../cli/ls_command.ts";
import { putMinFreeBytes } from "../../cli/_put_floor.ts";
import { DEFAULT_PUT_MIN_FREE_BYTES } from "../../node/_config_schema.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { cli } from "./_cli_child.ts";

/** More free bytes than any disk here has (4 PiB): a floor no put can keep. */
const FLOOR_NO_DISK_KEEPS = 4 * 1024 ** 5;

/** The variable `start` and `put` read the floor from: set for the child `put` only. */
const FLOOR_VARIABLE = "VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES";

Deno.test("put refuses a file that would leave less free disk than the configured storage.putMinFreeBytes, naming the key and storing nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-put-floor-" });
  try {
    const data = join(dir, "node");
    await Deno.writeTextFile(join(dir, "in.txt"), "hello, floor");
    const config = join(dir, "veriflow.json");
    await Deno.writeTextFile(
      config,
      JSON.stringify({ storage: { putMinFreeBytes: FLOOR_NO_DISK_KEEPS } }),
    );
    {
      const put = await cli(["put", "--init", "--data", data, join(dir, "in.txt")], undefined, {
        env: { VERIFLOW_CONFIG: config },
        denyEnv: [FLOOR_VARIABLE],
      });
      assert.equal(put.code, 1, `the put was not refused: ${put.out} ${put.err}`);
      assert.match(put.err, /error \[disk_full\]/);
      assert.match(
        put.err,
        new RegExp(`keeps ${FLOOR_NO_DISK_KEEPS} \\(storage\\.putMinFreeBytes\\)`),
      );
      assert.match(put.err, /VERIFLOW_CONFIG file, or VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES/);
      assert.equal(put.out, "", "no CID printed");
    }
    const ls = await capture(() => runLs(["--data", data]));
    assert.match(ls.out, /0 files/);
    // The variable sets it over the file, as `start` layers them: a floor of 0 keeps nothing back.
    {
      const put = await cli(["put", "--init", "--data", data, join(dir, "in.txt")], undefined, {
        env: { VERIFLOW_CONFIG: config, [FLOOR_VARIABLE]: "0" },
      });
      assert.equal(put.code, 0, put.err);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("put's floor is the node's default (256 MiB) when nothing configures it, and the file's or the variable's when set", async () => {
  assert.equal(await putMinFreeBytes({}), DEFAULT_PUT_MIN_FREE_BYTES);
  assert.equal(await putMinFreeBytes({ VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES: "1024" }), 1024);
  const dir = await Deno.makeTempDir({ prefix: "veriflow-put-floor-" });
  try {
    const config = join(dir, "veriflow.json");
    await Deno.writeTextFile(config, JSON.stringify({ storage: { putMinFreeBytes: 4096 } }));
    assert.equal(await putMinFreeBytes({ VERIFLOW_CONFIG: config }), 4096);
    // A file that sets other keys only: the default, not 0.
    await Deno.writeTextFile(config, JSON.stringify({ storage: {} }));
    assert.equal(await putMinFreeBytes({ VERIFLOW_CONFIG: config }), DEFAULT_PUT_MIN_FREE_BYTES);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
