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
