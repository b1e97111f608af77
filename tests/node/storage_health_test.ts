/**
 * What a node says when its store cannot be written, or its storage actor crashes (review s71,
 * finding 3): an upload to a store whose `pending/` directory the OS refuses — it opened writable,
 * then could no longer be written (`chattr +i` under a running node) — is answered 503
 * `storage_unwritable`, as docs/API.md promises, not 500 `internal_error`; `/healthz` is `degraded`
 * with the `storage` condition `storage_unwritable` until a write succeeds again; and a storage
 * actor that crashed and was restarted is the condition `actor_restarting` (a crash loop was `ok`
 * until the node exited). A whole node (tiny model, no peers) over HTTP; the OS's refusal is
 * injected (`tests/storage/_refused_opens.ts`), so this holds as root too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { NODE_ACTORS } from "../../node/_actor_names.ts";
import { PENDING_DIR } from "../../storage/gc_roots.ts";
import { refuseOpensUnder } from "../storage/_refused_opens.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";

/** A condition as `/healthz` lists it. */
interface Condition {
  component: string;
  status: string;
  code: string;
  message: string;
}

Deno.test({
  name:
    "an upload to a store that can no longer be written is 503 storage_unwritable, /healthz is degraded with storage_unwritable until a write succeeds, and a storage actor that crashed is actor_restarting",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0, size: "tiny" },
      network: { listening: false },
      roles: { validator: false, prover: false },
    }));
    const upload = (seed: number) =>
      fetch(`${node.url}/v1/files?name=f.bin`, {
        method: "POST",
        body: ReadableStream.from([pseudoRandomBytes(3_000, seed)]),
      });
    const healthz = async () => {
      const response = await fetch(`${node.url}/healthz`);
      assert.equal(response.status, 200);
      return await response.json() as { status: string; conditions?: Condition[] };
    };
    try {
      const stored = await upload(1);
      assert.equal(stored.status, 201);
      await stored.body?.cancel();
      assert.equal((await healthz()).status, "ok");

      const pending = join(dir, "store", PENDING_DIR);
      const opens = refuseOpensUnder(pending);
      try {
        const refused = await upload(2);
        // Failed before the fix: 500 {"code":"internal_error"}.
        assert.equal(refused.status, 503);
        assert.equal((await refused.json()).error.code, "storage_unwritable");
        assert.equal(opens.refused, 1);
        // Failed before the fix: `ok`, no condition.
        const degraded = await healthz();
        assert.equal(degraded.status, "degraded");
        assert.deepEqual(degraded.conditions?.map((c) => [c.component, c.status, c.code]), [
          ["storage", "degraded", "storage_unwritable"],
        ]);
        assert.ok(
          degraded.conditions![0].message.includes(pending),
          degraded.conditions![0].message,
        );
      } finally {
        opens.restore();
      }
      // Writable again: the next put is stored, and the condition clears.
      const again = await upload(3);
      assert.equal(again.status, 201);
      await again.body?.cancel();
      assert.equal((await healthz()).status, "ok");

      // The storage actor crashes on a message it cannot take (as on any bug in a handler), and
      // its supervisor restarts it: the node is degraded while the crash counts toward giving up.
      const restarted = Promise.withResolvers<void>();
      const unsubscribe = node.system.events.subscribe((event) => {
        if (event.name === NODE_ACTORS.storage && event.type === "restarted") restarted.resolve();
      });
      try {
        node.system.lookup<unknown>(NODE_ACTORS.storage)!.tell(null);
        await restarted.promise;
      } finally {
        unsubscribe();
      }
      const crashed = await eventually(async () => {
        const h = await healthz();
        return h.status === "degraded" ? h : undefined;
      }, "/healthz degraded after the crash");
      const [condition] = crashed.conditions!;
      assert.equal(crashed.conditions!.length, 1);
      assert.equal(condition.component, NODE_ACTORS.storage);
      assert.equal(condition.code, "actor_restarting");
      assert.match(condition.message, /crashed 1 time in the last 30 s/);
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
