/**
 * The node's data directory: the lock that keeps two nodes off one directory, the directory a
 * command takes without `--data`, a directory that cannot be created said as the operator's
 * problem, and what the node keeps in it (its identity key, the operator token).
 */
import assert from "node:assert/strict";
import {
  DataDirLock,
  DataDirLockedError,
  DataDirNotDirectoryError,
  DataDirUnwritableError,
} from "../../node/data_dir_lock.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { join } from "node:path";
import { VeriflowError } from "../../protocols/errors.ts";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../../node/node_identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { loadOrCreateOperatorToken } from "../../node/dashboard_sources.ts";

/** A child process holding `dir`'s lock, once it says it holds it. */
async function holdInChild(dir: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./_lock_holder.ts", import.meta.url).pathname, dir],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("locked")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`lock holder exited before locking: ${said}`);
    said += value;
  }
  reader.releaseLock();
  return child;
}

Deno.test("data directory lock: a second holder is refused with the holder's pid; released, it is free again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await DataDirLock.acquire(dir, "node");
    const refused = await DataDirLock.acquire(dir, "ledger repair").then(
      () => assert.fail("a second holder got the lock"),
      (error) => error,
    );
    assert.ok(refused instanceof DataDirLockedError);
    assert.equal(refused.code, "data_dir_locked");
    assert.equal(refused.owner?.pid, Deno.pid);
    assert.equal(refused.owner?.purpose, "node");
    assert.match(refused.message, new RegExp(`process ${Deno.pid} \\(node`));
    await first.release();
    const second = await DataDirLock.acquire(dir, "ledger repair");
    await second.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("data directory lock: another process holding it is named; killed with SIGKILL, its lock does not block", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const child = await holdInChild(dir);
    const refused = await DataDirLock.acquire(dir, "node").then(
      () => assert.fail("the lock was taken while another process held it"),
      (error) => error as DataDirLockedError,
    );
    assert.equal(refused.owner?.pid, child.pid);
    child.kill("SIGKILL");
    await child.status;
    await child.stdin.close().catch(() => {});
    await child.stdout.cancel().catch(() => {});
    // The lock file still names the dead process; its lock went with it.
    const lock = await DataDirLock.acquire(dir, "node");
    await lock.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second node on the same data directory is refused, naming the first; after shutdown the directory is free", async () => {
  const dataDir = await Deno.makeTempDir();
  const config = parseNodeConfig({
    dataDir,
    roles: { storage: false, inference: false, prover: false, validator: true },
    http: { port: 0 },
    network: { listening: false },
    heartbeatMs: 0,
  });
  try {
    const models = new ModelRegistry(); // no model to load: the lock is what is tested
    const first = await startNode(config, { models });
    try {
      await assert.rejects(() => startNode(config, { models }), (error: unknown) => {
        assert.ok(error instanceof DataDirLockedError);
        assert.equal(error.owner?.pid, Deno.pid);
        return true;
      });
    } finally {
      await first.shutdown();
    }
    const again = await startNode(config, { models });
    await again.shutdown();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a data directory that is a file, or under one, is refused as such, not as a bare OS error", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const file = `${parent}/f.txt`;
    await Deno.writeTextFile(file, "hi\n");
    for (const target of [file, `${file}/sub`]) {
      const refused = await DataDirLock.acquire(target, "node").then(
        () => assert.fail(`${target} was locked`),
        (error) => error,
      );
      assert.ok(refused instanceof DataDirNotDirectoryError, String(refused));
      assert.equal(refused.code, "data_dir_not_directory");
      assert.match(
        refused.message,
        new RegExp(
          target === file
            ? `^--data names a file, not a directory: ${target};`
            : `^--data ${target} runs through a file, ${file};`,
        ),
      );
      assert.doesNotMatch(refused.message, /os error/);
    }
    assert.equal(await Deno.readTextFile(file), "hi\n");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

/**
 * Make `dir` unwritable for this process: `chmod a-w` for a user, `chattr +i` for root (whom
 * modes do not stop). Answers how to undo it, or undefined when this machine allows neither.
 */
async function makeUnwritable(dir: string): Promise<(() => Promise<void>) | undefined> {
  let undo: () => Promise<void>;
  if (Deno.uid() !== 0) {
    await Deno.chmod(dir, 0o555);
    undo = () => Deno.chmod(dir, 0o755);
  } else {
    const chattr = (flag: string) =>
      new Deno.Command("chattr", { args: [flag, dir], stdout: "null", stderr: "null" }).output()
        .then((out) => out.success, () => false);
    if (!await chattr("+i")) return undefined;
    undo = async () => void await chattr("-i");
  }
  try {
    await Deno.writeTextFile(`${dir}/probe`, "");
  } catch {
    return undo; // unwritable indeed
  }
  await undo();
  return undefined;
}

const probeDir = await Deno.makeTempDir();

const canMakeUnwritable = await makeUnwritable(probeDir).then(async (undo) => {
  await undo?.();
  return undo !== undefined;
});

await Deno.remove(probeDir, { recursive: true });

Deno.test({
  name:
    "an unwritable data directory is refused as such, naming it and what to check, not a bare OS error",
  ignore: !canMakeUnwritable,
  async fn() {
    const parent = await Deno.makeTempDir();
    const dir = `${parent}/ro`;
    await Deno.mkdir(dir);
    const undo = (await makeUnwritable(dir))!;
    try {
      for (const target of [dir, `${dir}/not-yet`]) {
        const refused = await DataDirLock.acquire(target, "node").then(
          () => assert.fail(`${target} was locked`),
          (error) => error,
        );
        assert.ok(refused instanceof DataDirUnwritableError, String(refused));
        assert.equal(refused.code, "data_dir_unwritable");
        assert.match(
          refused.message,
          new RegExp(
            `^data directory ${target} is not writable \\((Operation not permitted|Permission ` +
              `denied)\\); check its owner, permissions and free space`,
          ),
        );
        assert.doesNotMatch(refused.message, /os error/);
      }
    } finally {
      await undo();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

// The data directory a command takes without `--data`: `VERIFLOW_DATA_DIR` when set (what `start`
// reads), else `.veriflow` — so `cli.ts put` beside a node started with that variable writes into
// the node's store.

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function put(cwd: string, env: Record<string, string>, permissions: string[]) {
  const file = join(cwd, "hello.txt");
  await Deno.writeTextFile(file, "hello, data directory");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, CLI, "put", "--init", file],
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, err: new TextDecoder().decode(out.stderr) };
}

Deno.test("put without --data writes into $VERIFLOW_DATA_DIR when it is set, else ./.veriflow", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "veriflow-data-default-" });
  try {
    const nodeDir = join(cwd, "node-data");
    const set = await put(cwd, { VERIFLOW_DATA_DIR: nodeDir }, ["-A"]);
    assert.equal(set.code, 0, set.err);
    assert.ok((await Deno.stat(join(nodeDir, "store"))).isDirectory, "the node's store");
    await assert.rejects(Deno.stat(join(cwd, ".veriflow")), Deno.errors.NotFound);
    const unset = await put(cwd, {}, ["-A"]);
    assert.equal(unset.code, 0, unset.err);
    assert.ok((await Deno.stat(join(cwd, ".veriflow", "store"))).isDirectory);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

// A `--data` directory that cannot be created is said as the operator's problem, naming `--data`
// and the fix: `--data /proc/x` ended with a bare `No such file or directory (os error 2): mkdir
// '/proc/x'`, and `--data FILE/sub` was said to name a file when it runs through one.

async function refusal(dir: string): Promise<Error> {
  return await DataDirLock.acquire(dir, "node").then(
    async (lock) => {
      await lock.release();
      return assert.fail(`${dir} was locked`);
    },
    (error) => error,
  );
}

Deno.test({
  name: "a data directory whose parent cannot hold directories (/proc) names --data and the fix",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dir = `/proc/veriflow-review-s60-${Deno.pid}`;
    const refused = await refusal(dir);
    assert.ok(refused instanceof VeriflowError, String(refused));
    assert.equal(refused.code, "data_dir_uncreatable");
    assert.match(refused.message, new RegExp(`^--data ${dir} cannot be created`));
    assert.match(refused.message, /another --data directory/);
    assert.doesNotMatch(refused.message, /os error/);
  },
});

Deno.test("a data directory under a file is said to run through that file, not to name one", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const file = `${parent}/f.txt`;
    await Deno.writeTextFile(file, "hi\n");
    const refused = await refusal(`${file}/sub`);
    assert.ok(refused instanceof DataDirNotDirectoryError, String(refused));
    assert.equal(refused.code, "data_dir_not_directory");
    assert.match(refused.message, new RegExp(`^--data ${file}/sub runs through a file, ${file};`));
    assert.doesNotMatch(refused.message, /os error/);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

// The node's identity key is created once and never replaced: two creators at once (a node's first
// start beside a `cli.ts put`, which takes no lock) are handed the same key, the one on disk, and a
// dangling link where the key should be is an error, not a missing key made anew. A rename used to
// publish it, replacing whatever was there: one creator ran on a key no longer on disk, and the
// link was replaced by a new key (found by a review at stop 33).

Deno.test("creators of a node's identity at once are all handed the key on disk, and no temporary file is left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keys = await Promise.all(
      Array.from({ length: 8 }, async () => toHex((await loadOrCreateIdentity(dir)).publicKey)),
    );
    const disk = toHex((await loadOrCreateIdentity(dir)).publicKey);
    assert.deepEqual(new Set(keys), new Set([disk]));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [IDENTITY_FILE]);
    assert.equal((Deno.statSync(join(dir, IDENTITY_FILE)).mode ?? 0) & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an identity key that is a link to nothing (a volume not mounted yet) is an error, and the link stays", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, IDENTITY_FILE);
    Deno.symlinkSync(join(dir, "secrets", "identity.key"), path);
    await assert.rejects(() => loadOrCreateIdentity(dir), { code: "identity_unreadable" });
    assert.ok(Deno.lstatSync(path).isSymlink, "not replaced by a new key");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// The operator token file (`<data>/operator.token`): made once, and readable by its owner only.

const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test({
  name:
    "the operator token is kept across starts, and its file ends up mode 0600 even when it was there world-readable (rewritten, or kept)",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const path = join(dir, "operator.token");
    try {
      const made = await loadOrCreateOperatorToken(dir);
      assert.equal(await modeOf(path), 0o600);
      assert.equal(await loadOrCreateOperatorToken(dir), made, "kept across starts");
      // A token file left world-readable (copied in, restored from a backup): tightened.
      await Deno.chmod(path, 0o644);
      assert.equal(await loadOrCreateOperatorToken(dir), made);
      assert.equal(await modeOf(path), 0o600);
      // One too short to use is rewritten; `mode` on the write applies only to a new file.
      await Deno.writeTextFile(path, "short\n");
      await Deno.chmod(path, 0o644);
      const fresh = await loadOrCreateOperatorToken(dir);
      assert.notEqual(fresh, made);
      assert.equal(await modeOf(path), 0o600);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
