/**
 * A router's worker routing over fake peer entries with stake standings of a test's choosing
 * (`network/_worker_routing.ts`): where a job's pick goes says which worker's stake it holds.
 * What the stake-hold routing tests share.
 *
 * @module
 */
import type { NetworkActorOptions } from "../../network/network_actor.ts";
import type { PeerEntry } from "../../network/_peer_entry.ts";
import { WorkerRouting } from "../../network/_worker_routing.ts";
import type { WorkerCandidate } from "../../network/worker_choice.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { job, served } from "./_scripted_workers.ts";

/** One job's worst-case lock on its worker's stake (a 200-token prompt). */
export const LOCK: number = jobStakeLock(job("lock"), 200);

/** A peer entry of worker `key`, open and serving the model, running `running` of 4 slots. */
function entry(key: string, running: number): PeerEntry {
  const connection = {
    isClosed: false,
    supports: () => true,
    pendingRequestsOf: () => 0,
  } as unknown as Connection;
  return {
    connection,
    info: { key, models: [served.cid], convicted: false },
    models: [],
    hello: { load: { running, queued: 0, slots: 4, queueLimit: 0 } },
  } as unknown as PeerEntry;
}

/** A worker of {@link stakeRouting}: its key, its slots in use, its free stake (nothing locked). */
export interface StakedWorker {
  key: string;
  running: number;
  stake: number;
}

/** The routing and a pick that names the worker a lookup chose (undefined: none). */
export interface StakeRouting {
  r: WorkerRouting;
  pick: (...args: Parameters<WorkerRouting["worker"]>) => string | undefined;
}

/** Routing over `workers` (one peer entry each), with no holders and no services. */
export function stakeRouting(workers: StakedWorker[]): StakeRouting {
  const entries = workers.map((w) => entry(w.key, w.running));
  const r = new WorkerRouting({
    options: { identity: Identity.generate() } as NetworkActorOptions,
    peers: new Map(workers.map((w, i) => [w.key, [entries[i]]])),
    standing: new Map<string, WorkerCandidate["standing"]>(
      workers.map((w) => [w.key, { stake: w.stake, locked: 0, balance: 0 }]),
    ),
    holders: () => [],
    services: () => undefined,
  });
  const keys = new Map(entries.map((e, i) => [e.connection, workers[i].key]));
  const pick = (...args: Parameters<WorkerRouting["worker"]>) => {
    const connection = r.worker(...args);
    return connection && keys.get(connection);
  };
  return { r, pick };
}

/** Routing over `one` (idle, its stake backs one job) and `many` (busier, its stake backs ten). */
export function oneAndMany(): StakeRouting {
  return stakeRouting([
    { key: "one", running: 0, stake: LOCK },
    { key: "many", running: 2, stake: 10 * LOCK },
  ]);
}
