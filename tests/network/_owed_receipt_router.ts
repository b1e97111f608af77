/**
 * Test fixture for a router whose worker's receipt is owed (`network/_lost_ends.ts`): the router
 * (its validator keeping a real ledger in a fresh temporary folder, its network stand-in offering
 * whichever worker the test sets), an owing worker that holds its end until released and another
 * worker, both staked; and the step that makes the receipt owed, every token delivered and the
 * connection lost before the end event. For `owed_receipt_retry_test.ts` and
 * `owed_receipt_expiry_test.ts`, which build their router's port themselves (each its own
 * timers and file).
 *
 * @module
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { InferencePort, JobSummary } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type LedgerReads, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { connectWorker, OneWorker, ProvingWorkerPort, spawnRouter } from "./_proving_worker.ts";
import { WORKER_STAKE } from "./_assigned_job_router.ts";

/** The router, its two workers, and what a test reads of them. */
export interface OwedReceiptRouter {
  dir: string;
  router: Identity;
  /** The worker whose end event is lost: its port holds the end until `release`. */
  owing: Identity;
  owingPort: ProvingWorkerPort;
  /** The worker a retry would go to. */
  other: Identity;
  otherPort: ProvingWorkerPort;
  network: OneWorker;
  networkRef: ActorRef<NetworkMessage>;
  validator: ActorRef<ValidatorMessage>;
  reads: LedgerReads;
  /** The workers' system, for connecting them to the router. */
  workerSystem: ActorSystem;
  close(): Promise<void>;
}

/** Start a router named `name` (its systems `<name>-router` and `<name>-workers`). */
export async function startOwedReceiptRouter(name: string): Promise<OwedReceiptRouter> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `${name}-router` });
  const workerSystem = new ActorSystem({ name: `${name}-workers` });
  const router = Identity.generate();
  const [owing, other] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const close = async () => {
    await routerSystem.shutdown();
    await workerSystem.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
    for (const w of [owing, other]) {
      await validator.ask({ type: "deposit", key: w.publicKey, amount: WORKER_STAKE });
    }
    return {
      dir,
      router,
      owing,
      owingPort: new ProvingWorkerPort(owing, { held: true }),
      other,
      otherPort: new ProvingWorkerPort(other),
      network,
      networkRef,
      validator,
      reads: ledgerReads(() => validator, clock),
      workerSystem,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The owing worker runs `job` through the router's `port`: the client reads every token, the
 * connection is lost, then the worker signs its receipt with its end unsent. The job's summary.
 */
export async function loseEnd(
  r: OwedReceiptRouter,
  port: InferencePort,
  job: TextJob,
): Promise<JobSummary> {
  const first = await connectWorker(r.router, r.owing, r.owingPort, r.workerSystem);
  r.network.connection = first.toWorker;
  const handle = await port.submit(job);
  for await (const _ of handle.tokens) { /* the client reads every token */ }
  await first.toWorker.close();
  await first.atWorker.close();
  r.owingPort.release.resolve(); // its receipt is signed, its end unsent
  return await handle.done;
}
