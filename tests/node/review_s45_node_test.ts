/**
 * Review at stop 45 of the node process's life as an operator sees it (`node/*.ts`): what it
 * offers once a model has failed, and how it stops.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { ModelRegistry, type RegisteredModelHealth } from "../../inference/model_registry.ts";
import { Connection } from "../../protocols/connection.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { DataDirLock } from "../../node/data_dir_lock.ts";
import { startHeartbeat } from "../../node/heartbeat.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../../node/node_identity.ts";

/** A registry whose models' health the test sets (a pool that gave up on its workers). */
class ScriptedHealthRegistry extends ModelRegistry {
  status: RegisteredModelHealth["status"] = "ok";
  override health(): RegisteredModelHealth[] {
    return this.list().map((m) => ({
      cid: m.cid,
      name: m.name,
      status: this.status,
      restarts: this.status === "ok" ? 0 : 5,
      workers: [{
        index: 0,
        lane: "generation" as const,
        state: this.status === "failed" ? "failed" as const : "running" as const,
        restarts: this.status === "ok" ? 0 : 5,
      }],
    }));
  }
}

/** A node with only the inference role, on ports 0 of 127.0.0.1. */
function inferenceOnly(dataDir: string) {
  return parseNodeConfig({
    dataDir,
    http: { port: 0, hostname: "127.0.0.1" },
    network: { listen: { port: 0, hostname: "127.0.0.1" } },
    roles: { storage: false, prover: false, validator: false },
    dashboard: { enabled: false },
    heartbeatMs: 0,
  });
}

Deno.test("a model whose workers all failed is no longer offered: /v1/models and a peer's model list leave it out", async () => {
  const dir = await Deno.makeTempDir();
  const models = new ScriptedHealthRegistry();
  // A tensor model: registering reads its bytes only; nothing is loaded here.
  await Deno.writeFile(join(dir, "m.onnx"), new Uint8Array([1, 2, 3, 4]));
  const { cid } = await models.register(join(dir, "m.onnx"));
  const node = await startNode(inferenceOnly(join(dir, "data")), { models });
  try {
    const listed = async () => {
      const response = await fetch(`${node.url}/v1/models`);
      const body = await response.json();
      return (body.data as { id: string }[]).map((m) => m.id);
    };
    assert.ok((await listed()).includes(cid), "listed while it serves");
    models.status = "degraded";
    assert.ok((await listed()).includes(cid), "a degraded model still serves");

    models.status = "failed"; // jobs on it fail until the node is restarted
    assert.ok(!(await listed()).includes(cid), "a failed model is not offered to clients");
    const address = await node.peerAddress();
    assert.ok(address);
    const connection = await Connection.open(await connectTcp(address), {
      identity: Identity.generate(),
      protocols: [INFERENCE_PROTOCOL],
    });
    try {
      const offered = await new RemoteInferencePort(connection).models();
      assert.deepEqual(offered.map((m) => m.cid), [], "nor to peers, who would route jobs to it");
    } finally {
      await connection.close();
    }
    assert.equal((await fetch(`${node.url}/healthz`).then((r) => r.json())).status, "failed");
  } finally {
    await node.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node whose stop fails part-way still stops the rest and frees its data directory", async () => {
  const dir = await Deno.makeTempDir();
  const models = new (class extends ScriptedHealthRegistry {
    override close(): Promise<void> {
      return Promise.reject(new Error("a model worker did not dispose"));
    }
  })();
  await Deno.writeFile(join(dir, "m.onnx"), new Uint8Array([1, 2, 3, 4]));
  await models.register(join(dir, "m.onnx"));
  const dataDir = join(dir, "data");
  const lines: string[] = [];
  const node = await startNode(inferenceOnly(dataDir), { models, log: (l) => lines.push(l) });
  try {
    // Neither rejects: in `cli.ts start` the stop is not awaited, and a rejection there ended
    // the process on an unhandled rejection instead of "stopped.".
    await node.shutdown();
    assert.deepEqual(await node.finished, {});
    assert.ok(
      lines.includes("error: stopping the models: a model worker did not dispose"),
      lines.join("\n"),
    );
    // The directory is free for the next start (or `ledger repair`) in this process.
    await (await DataDirLock.acquire(dataDir, "test")).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "an identity key others can read (restored from a backup, copied under umask 022) is made owner-only at start",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = join(dir, IDENTITY_FILE);
      const seed = Identity.generate().exportSecretKey();
      await Deno.writeFile(path, seed, { mode: 0o644 });
      await Deno.chmod(path, 0o644);
      const identity = await loadOrCreateIdentity(dir);
      assert.deepEqual(identity.exportSecretKey(), seed, "the key on disk is the node's");
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the heartbeat starts no beat while one waits on a wedged actor, and logs nothing once stopped", async () => {
  const lines: string[] = [];
  let asks = 0;
  const held = Promise.withResolvers<never>();
  const validator = {
    ask: () => {
      asks++;
      return held.promise; // wedged: answers (here: fails) only when released
    },
  } as unknown as ActorRef<ValidatorMessage>;
  const heartbeat = startHeartbeat({
    everyMs: 1,
    publicKey: new Uint8Array(32),
    validator: () => validator,
    network: () => undefined,
    log: (line) => lines.push(line),
  });
  try {
    await eventually(() => asks > 0, "a beat to ask the validator");
    await delay(50); // fifty intervals: each started another beat behind the wedged one
    assert.equal(asks, 1, "one beat at a time");
  } finally {
    heartbeat.stop(); // the node stops while the beat still waits
  }
  held.reject(new Error("actor node/validator stopped"));
  await delay(0);
  assert.deepEqual(lines, [], "no heartbeat line after the node stopped");
});
