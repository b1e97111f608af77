/**
 * A coordinator's state never names a model that a power cut could take back: the state file is
 * fsynced, so every model it names must be on disk for good before it — `model.onnx` renamed into
 * place from an fsynced temporary file, the model directory's other files fsynced, the model
 * directory and the directory holding it fsynced. Checked on the file operations of a real
 * round, recorded through the Deno calls they go through (the test cannot cut the power).
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { commitShard } from "../../training/training_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { honestTrainer } from "./_coordinator_trainers.ts";

/** One file operation, in the order it happened. */
type FileEvent =
  | { op: "write"; path: string } // written without fsync (Deno.writeFile / writeTextFile)
  | { op: "sync"; path: string } // fsync of a file or directory opened at `path`
  | { op: "rename"; from: string; to: string; names?: string }; // `names`: the model a state names

/** Record every write, fsync and rename until the returned function restores the Deno calls. */
function recordFileEvents(events: FileEvent[]): () => void {
  const { open, rename, writeFile, writeTextFile } = Deno;
  const stubs = {
    open: async (path: string | URL, options?: Deno.OpenOptions) => {
      const file = await open(path, options);
      const sync = file.sync.bind(file);
      const syncData = file.syncData.bind(file);
      file.sync = () => (events.push({ op: "sync", path: String(path) }), sync());
      file.syncData = () => (events.push({ op: "sync", path: String(path) }), syncData());
      return file;
    },
    rename: (from: string | URL, to: string | URL) => {
      const event: FileEvent = { op: "rename", from: String(from), to: String(to) };
      if (String(to).endsWith("coordinator.json")) {
        event.names = JSON.parse(Deno.readTextFileSync(from)).model.cid;
      }
      events.push(event);
      return rename(from, to);
    },
    writeFile: (path: string | URL, ...rest: unknown[]) => {
      events.push({ op: "write", path: String(path) });
      return (writeFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
    },
    writeTextFile: (path: string | URL, ...rest: unknown[]) => {
      events.push({ op: "write", path: String(path) });
      return (writeTextFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
    },
  };
  Object.assign(Deno, stubs);
  return () => Object.assign(Deno, { open, rename, writeFile, writeTextFile });
}

/**
 * Why model `cid`'s directory was not yet durable at event `before` (undefined: it was).
 */
function notDurable(
  events: FileEvent[],
  before: number,
  modelsDir: string,
  cid: string,
): string | undefined {
  const dir = join(modelsDir, cid);
  const onnx = join(dir, "model.onnx");
  const seen = events.slice(0, before);
  const lastIndex = (test: (e: FileEvent) => boolean) => seen.findLastIndex(test);
  const synced = (path: string, after: number) =>
    seen.some((e, i) => i > after && e.op === "sync" && e.path === path);

  const placed = lastIndex((e) => e.op === "rename" && e.to === onnx);
  if (placed < 0) return "model.onnx was not renamed into place";
  const tmp = (seen[placed] as { from: string }).from;
  if (!seen.slice(0, placed).some((e) => e.op === "sync" && e.path === tmp)) {
    return "model.onnx was renamed into place unsynced";
  }
  if (lastIndex((e) => e.op === "write" && e.path === onnx) > placed) {
    return "model.onnx was overwritten after";
  }
  for (const { name } of Deno.readDirSync(dir)) {
    const path = join(dir, name);
    if (path === onnx) continue;
    const written = lastIndex((e) => e.op === "write" && e.path === path);
    if (!synced(path, written)) return `${name} was not synced after its write`;
  }
  if (!synced(dir, placed)) return "the model directory was not synced after model.onnx";
  const made = seen.findIndex((e) => "path" in e && dirname(e.path) === dir);
  if (!synced(modelsDir, made)) return "the models directory was not synced after the model's";
  return undefined;
}

Deno.test("every model a coordinator's state names was durable on disk before the state that names it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-model-durable-" });
  const system = new ActorSystem({ name: "durable" });
  const events: FileEvent[] = [];
  const restore = recordFileEvents(events);
  try {
    const split = await testSplit();
    const modelsDir = join(dir, "models");
    const models = new RoundModels({ modelsDir, storage: () => undefined });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: 2,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: 1,
          models,
          statePath: join(dir, "training", "coordinator.json"),
        }),
    });
    const trainer = Identity.generate();
    const { size, root } = commitShard(split.shards[0], TEST_HYPER.sampleBytes);
    await coordinator.ask({
      type: "join",
      connection: honestTrainer(trainer, split.shards[0], models).connection,
      shardSize: size,
      shardRoot: root,
    });
    const { history } = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === 1 ? s : undefined;
      },
      "round 0 to finish",
      { timeoutMs: 60_000 },
    );
    const [round] = history;
    assert.notEqual(round.model, round.startModel, "the round made a model");

    // The first state to name each model: the seeded one (round 0's announce), round 0's.
    for (const cid of [round.startModel, round.model]) {
      const first = events.findIndex((e) => e.op === "rename" && e.names === cid);
      assert.ok(first >= 0, `a state names ${cid}`);
      assert.equal(notDurable(events, first, modelsDir, cid), undefined, cid);
    }
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
