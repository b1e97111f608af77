/**
 * Who can read a node's data directory: clients' prompts sit in clear in its proof files and in
 * the peers' jobs it keeps, so the directory is its owner's only (0700, an existing one
 * tightened, `node/data_dir_lock.ts`) and each durable file is made 0600
 * (`proof/_durable_file.ts`), whatever the umask. Modes do not exist on Windows: skipped there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DataDirLock } from "../../node/data_dir_lock.ts";
import { writeFileDurably } from "../../proof/_durable_file.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { PLEDGE_FILE } from "../../node/node_pledge.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";

const ignore = Deno.build.os === "windows";

/** The permission bits of `path`. */
function modeOf(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

/** Run `body` under umask 022 (the usual default: files 0644, directories 0755). */
async function underUmask022<T>(body: () => Promise<T>): Promise<T> {
  const before = Deno.umask(0o022);
  try {
    return await body();
  } finally {
    Deno.umask(before);
  }
}

Deno.test({
  name: "a data directory the lock creates is its owner's only (0700), parents included",
  ignore,
  fn: async () => {
    const parent = await Deno.makeTempDir();
    try {
      const dir = join(parent, "a", "data");
      const lock = await underUmask022(() => DataDirLock.acquire(dir, "test"));
      await lock.release();
      assert.equal(modeOf(dir).toString(8), "700");
      assert.equal(modeOf(join(parent, "a")).toString(8), "700");
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name: "an existing data directory others can read is made 0700 when it is taken",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.chmod(dir, 0o755);
      const lock = await DataDirLock.acquire(dir, "test");
      await lock.release();
      assert.equal(modeOf(dir).toString(8), "700");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a durable file is written 0600, a new one and one written over a 0644 file alike",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await underUmask022(async () => {
        const fresh = join(dir, "fresh.cbor");
        await writeFileDurably(fresh, new Uint8Array([1]));
        assert.equal(modeOf(fresh).toString(8), "600");
        const old = join(dir, "old.cbor");
        await Deno.writeFile(old, new Uint8Array([2]), { mode: 0o644 });
        await writeFileDurably(old, new Uint8Array([3]));
        assert.equal(modeOf(old).toString(8), "600");
        assert.deepEqual(await Deno.readFile(old), new Uint8Array([3]));
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a node's first start leaves its data directory 0700 and its pledge 0600",
  ignore,
  fn: async () => {
    const parent = await Deno.makeTempDir();
    try {
      const dataDir = join(parent, "node");
      const config = parseNodeConfig({
        dataDir,
        http: { port: 0 },
        network: { listening: false },
        heartbeatMs: 0,
        dashboard: { enabled: false },
        roles: { storage: false, inference: false, prover: false, validator: true },
      });
      await underUmask022(async () => {
        const node = await startNode(config, { models: new ModelRegistry() });
        await node.shutdown();
      });
      assert.equal(modeOf(dataDir).toString(8), "700");
      assert.equal(modeOf(join(dataDir, PLEDGE_FILE)).toString(8), "600");
      assert.equal(modeOf(join(dataDir, "ledger", "checkpoint.cbor")).toString(8), "600");
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  },
});
