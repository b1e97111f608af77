/**
 * Who can read a node's data directory: clients' prompts sit in clear in its proof files and in
 * the peers' jobs it keeps, so the directory is its owner's only (0700, an existing one
 * tightened, `node/data_dir_lock.ts`) and each durable file is made 0600
 * (`proof/_durable_file.ts`), whatever the umask. So is everything inside it (`node.lock`,
 * `models/`, `calibration/`, the proof store's directories: `protocols/owner_only.ts`), so that
 * a data directory opened to others, or a backup copying it, keeps them private. Modes do not
 * exist on Windows: skipped there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DATA_DIR_LOCK_FILE, DataDirLock } from "../../node/data_dir_lock.ts";
import { ProofStore, type StoredProof } from "../../proof/proof_store.ts";
import { CalibrationStore } from "../../proof/calibration.ts";
import { handProfile } from "../_helpers/hand_profile.ts";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { writeFileDurably } from "../../proof/_durable_file.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { PLEDGE_FILE } from "../../node/node_pledge.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { modeOf, modesTest, opened, underUmask000, underUmask022 } from "../_helpers/file_modes.ts";

modesTest(
  "a data directory the lock creates is its owner's only (0700), parents included",
  async (parent) => {
    const dir = join(parent, "a", "data");
    const lock = await underUmask022(() => DataDirLock.acquire(dir, "test"));
    await lock.release();
    assert.equal(modeOf(dir).toString(8), "700");
    assert.equal(modeOf(join(parent, "a")).toString(8), "700");
  },
);

modesTest(
  "an existing data directory others can read is made 0700 when it is taken",
  async (dir) => {
    await Deno.chmod(dir, 0o755);
    const lock = await DataDirLock.acquire(dir, "test");
    await lock.release();
    assert.equal(modeOf(dir).toString(8), "700");
  },
);

modesTest(
  "a durable file is written 0600, a new one and one written over a 0644 file alike",
  async (dir) => {
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
  },
);

modesTest(
  "a node's first start leaves its data directory 0700 and its pledge 0600",
  async (parent) => {
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
  },
);

modesTest(
  "under umask 000 a node's first start and first job leave nothing in its data directory that others may open",
  async (parent) => {
    const dataDir = join(parent, "node");
    const config = parseNodeConfig({
      dataDir,
      http: { port: 0 },
      network: { listening: false },
      heartbeatMs: 0,
      // Every role that writes in the data directory, the dashboard's operator token included.
      roles: { storage: true, inference: true, prover: true, validator: true },
      dashboard: { enabled: true },
      model: { size: "tiny", workers: 0 },
    });
    await underUmask000(async () => {
      const node = await startNode(config);
      try {
        const [model] = await node.inference!.models();
        const handle = await node.inference!.submit({
          kind: "text",
          model: model.cid,
          prompt: "The history of",
          params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 4 },
          nonce: crypto.randomUUID(),
        });
        for await (const _ of handle.tokens) { /* read to the end */ }
        await handle.done; // its proof record is on disk before the receipt is out
      } finally {
        await node.shutdown();
      }
    });
    // What the walk below must have seen, so that it cannot pass on a directory left empty.
    const names = [...Deno.readDirSync(dataDir)].map((e) => e.name);
    for (const name of ["models", "calibration", "proofs", "ledger", DATA_DIR_LOCK_FILE]) {
      assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
    }
    assert.ok([...Deno.readDirSync(join(dataDir, "proofs"))].length > 0, "a proof bucket");
    assert.deepEqual(await opened(dataDir), []);
  },
);

modesTest(
  "a node.lock an earlier version left 0644 is made 0600 when the lock is taken",
  async (dir) => {
    const path = join(dir, DATA_DIR_LOCK_FILE);
    await Deno.writeTextFile(path, "", { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    const lock = await DataDirLock.acquire(dir, "test");
    await lock.release();
    assert.equal(modeOf(path).toString(8), "600");
  },
);

modesTest(
  "under umask 000 the proof store makes its directories 0700 and an earlier 0755 one is tightened",
  async (parent) => {
    const record = (id: string) => ({
      receiptId: id.repeat(64),
      provedAt: 120_000,
      proof: {} as StoredProof["proof"],
    });
    const fresh = join(parent, "fresh", "proofs");
    await underUmask000(() => new ProofStore(fresh, { retentionMs: 1 }).put(record("a")));
    assert.deepEqual(await opened(join(parent, "fresh")), []);
    const old = join(parent, "old");
    await Deno.mkdir(old, { mode: 0o755 });
    await Deno.chmod(old, 0o755);
    await underUmask000(() => new ProofStore(old, { retentionMs: 1 }).put(record("b")));
    assert.deepEqual(await opened(old), []);
  },
);

modesTest(
  "under umask 000 the calibration directory is 0700 and a saved profile 0600",
  async (parent) => {
    const dir = join(parent, "calibration");
    await underUmask000(async () => {
      const store = await CalibrationStore.open(dir);
      await store.save(handProfile("Ok"));
    });
    assert.deepEqual((await opened(dir)).sort(), []);
    assert.ok(Deno.statSync(join(dir, "Ok.json")).isFile);
  },
);

modesTest(
  "under umask 000 the built-in model's directory, files and alias are the owner's only",
  async (parent) => {
    const models = join(parent, "models");
    const dir = await underUmask000(() => ensureBuiltinModel(models, "tiny", 0));
    assert.ok(Deno.statSync(join(dir, "model.onnx")).isFile);
    assert.deepEqual(await opened(models), []);
    // A copy an earlier version built with the umask's modes is tightened when it is used.
    await Deno.chmod(models, 0o755);
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(join(dir, "model.onnx"), 0o644);
    assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
    assert.deepEqual(await opened(models), []);
  },
);
