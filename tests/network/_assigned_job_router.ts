/**
 * Test fixture for a router's refusals of a client's retry of a job (`network/_assigned_jobs.ts`):
 * the router (a `NetworkInferencePort` whose validator keeps a real ledger, its network stand-in
 * offering whichever worker the test sets) and worker nodes that run and prove their jobs for real
 * (InferenceActor, ProverActor, the honest model), each with its stake deposited in the router's
 * ledger; and the steps their tests share: a job run to its end, its receipt waited for until it is
 * recorded assigned; a port of a router killed after its clients got `done`, and where a job's id
 * stands in its assigned jobs' file.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import {
  ASSIGNED_JOBS_FILE,
  type ForwardingOptions,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { LocalInferencePort } from "../../inference/local_port.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { type LedgerReads, ledgerReads, START } from "../actors/_validator_fixture.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { connectWorker, OneWorker, spawnRouter } from "./_proving_worker.ts";

/** Each worker's stake: far more than one job locks. */
export const WORKER_STAKE = 1_000_000;

/** A worker node (its own system), served to the router over an in-memory connection. */
export interface TestWorkerNode {
  identity: Identity;
  local: LocalInferencePort;
  connection: Connection;
  close(): Promise<void>;
}

/** The router and what a test reads of it. */
export interface TestRouter {
  dir: string;
  router: Identity;
  network: OneWorker;
  networkRef: ActorRef<NetworkMessage>;
  validator: ActorRef<ValidatorMessage>;
  reads: LedgerReads;
  /** A forwarding port of this router (a restart: another one, over the same file). */
  port(options?: ForwardingOptions): NetworkInferencePort;
  /** A worker node, its stake deposited in the router's ledger. */
  worker(label: string): Promise<TestWorkerNode>;
  close(): Promise<void>;
}

/** Start a router named `name` with its ledger in a fresh temporary folder. */
export async function startRouter(name: string): Promise<TestRouter> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name });
  const router = Identity.generate();
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(system, dir, clock, router, network);
  const workers: TestWorkerNode[] = [];
  return {
    dir,
    router,
    network,
    networkRef,
    validator,
    reads: ledgerReads(() => validator, clock),
    port: (options = {}) =>
      new NetworkInferencePort(networkRef, validator, router, { tokensPerEvent: 1, ...options }),
    async worker(label) {
      const identity = Identity.generate();
      const workerSystem = new ActorSystem({ name: `${name}-${label}` });
      const { local } = await spawnHonestInference(workerSystem, identity);
      const ends = await connectWorker(router, identity, local, workerSystem);
      await validator.ask({ type: "deposit", key: identity.publicKey, amount: WORKER_STAKE });
      const node = {
        identity,
        local,
        connection: ends.toWorker,
        async close() {
          await ends.toWorker.close();
          await ends.atWorker.close();
          await workerSystem.shutdown();
        },
      };
      workers.push(node);
      return node;
    },
    async close() {
      for (const w of workers) await w.close();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * `r`'s port over its assigned jobs' file (`file`, in `r.dir`) as a router killed after its
 * clients got `done` left it: its validator never takes what it is handed (the handover died with
 * the process). Closing it is the test's; a restart is `r.port({ assignedJobsFile: file })`.
 */
export function killedPort(r: TestRouter): { file: string; killed: NetworkInferencePort } {
  const file = `${r.dir}/${ASSIGNED_JOBS_FILE}`;
  const lostHandovers = {
    name: r.validator.name,
    tell: () => Promise.resolve(),
    ask: (message, options) => r.validator.ask(message, options),
  } as ActorRef<ValidatorMessage>;
  const killed = new NetworkInferencePort(r.networkRef, lostHandovers, r.router, {
    tokensPerEvent: 1,
    assignedJobsFile: file,
  });
  return { file, killed };
}

/** Where job `jobId`'s id (hex) starts in an assigned jobs' file's `bytes`; -1 if nowhere. */
export function jobIdAt(bytes: Uint8Array, jobId: string): number {
  const idBytes = Uint8Array.from(jobId.match(/../g)!, (h) => parseInt(h, 16));
  return bytes.findIndex((_, i) => idBytes.every((b, j) => bytes[i + j] === b));
}

/** How long a finished job's receipt may take to be recorded: far past an in-memory round trip. */
const RECORDED_TIMEOUT_MS = 3_000;

/** Submit `job` through `port`, the client reading every token; the receipt it ends with, if any. */
export async function receiptOfRun(
  port: { submit(job: TextJob): Promise<InferenceHandle> },
  job: TextJob,
): Promise<Receipt | undefined> {
  const handle = await port.submit(job);
  for await (const _ of handle.tokens) { /* the client reads every token */ }
  return (await handle.done).receipt as Receipt | undefined;
}

/** Wait until the router's ledger holds `receipt` recorded with its assignment (`what` names it). */
export async function recordedAssigned(
  r: { reads: LedgerReads },
  receipt: Receipt,
  what: string,
): Promise<void> {
  await eventually(
    async () => (await r.reads.record(receiptId(receipt)))?.requester !== undefined,
    what,
    { timeoutMs: RECORDED_TIMEOUT_MS },
  );
}
