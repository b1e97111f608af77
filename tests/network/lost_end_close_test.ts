/**
 * A forwarding port's close (the node's stop) waits for the lost-end files it is writing
 * (`network/_lost_end_files.ts`), as it waits for its assigned-jobs file, and writes none after:
 * before, the write of a lost end remembered just before the stop was awaited by nobody, and
 * landed after the node had released its data directory, or not at all (stop 78 left open).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { LOST_ENDS_DIR, NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { clientJob, connectWorker, OneWorker, ProvingWorkerPort } from "./_proving_worker.ts";
import { Recorder } from "./_router_doubles.ts";

/** Names of the files in the lost-end folder under `dir` (none when it does not exist yet). */
async function filesIn(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(join(dir, LOST_ENDS_DIR)))).map((e) => e.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test("a forwarding port's close waits for the lost end it is writing, and writes none remembered after it", async () => {
  const dir = await Deno.makeTempDir();
  const routerSystem = new ActorSystem({ name: "lost-end-close-router" });
  const workerSystem = new ActorSystem({ name: "lost-end-close-worker" });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  try {
    const networkRef = await routerSystem.spawn<NetworkMessage>({
      name: "router/network",
      factory: () => network,
    });
    // Only the files matter here: a validator that keeps what it is told and does nothing.
    const validator = await routerSystem.spawn<ValidatorMessage>({
      name: "router/validator",
      factory: () => new Recorder(),
    });
    const workerPort = new ProvingWorkerPort(worker, { held: true });
    const port = new NetworkInferencePort(networkRef, validator, router, {
      tokensPerEvent: 1,
      timers: new FakeTimers(), // the asks for the receipt never come: only the files matter
      lostEndsDir: join(dir, LOST_ENDS_DIR),
    });
    /** Run a job and lose its worker's end event after the client's last token: a lost end. */
    const loseEnd = async (nonce: string) => {
      workerPort.release = Promise.withResolvers<void>();
      const ends = await connectWorker(router, worker, workerPort, workerSystem);
      network.connection = ends.toWorker;
      const handle = await port.submit(clientJob(nonce, 4));
      for await (const _ of handle.tokens) { /* every token reaches the client */ }
      await ends.toWorker.close();
      await ends.atWorker.close();
      workerPort.release.resolve();
      const summary = await handle.done;
      assert.equal(summary.error?.code, "connection_closed", "the end was not lost");
    };

    await loseEnd("lost-end-close-1");
    await port.close();
    // Written whole by the time the close resolved: its record, no temporary left half-written.
    assert.deepEqual(
      (await filesIn(dir)).map((name) => name.endsWith(".cbor")),
      [true],
      `the folder at the close: ${await filesIn(dir)}`,
    );

    // A lost end after the close is kept in memory only: nothing more is written.
    await loseEnd("lost-end-close-2");
    await port.close();
    assert.equal((await filesIn(dir)).length, 1, `written after the close: ${await filesIn(dir)}`);
  } finally {
    await network.connection?.close();
    await routerSystem.shutdown();
    await workerSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
