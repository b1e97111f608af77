/**
 * The node's store as conditions of the node, for `/healthz` (`server/health_routes.ts`), as the
 * ledger is (`ledger_conditions.ts`): a store that cannot be written is the `degraded` condition
 * `storage_unwritable` — opened read-only (its directory refused writes when the StorageActor
 * started: `StorageCapacity.readOnly`, until a restart finds it writable), or a write the OS
 * refused since (`StorageCapacity.writeFault`, `_storage_write_faults.ts`: a directory turned
 * read-only, no permission, a failing device; until a write succeeds). The node still serves
 * what it holds; puts, pins and peers' chunks are refused `storage_unwritable` (503). Review s71,
 * finding 3: such a node answered `ok`. A StorageActor that does not answer within 2 s (wedged,
 * or down between a crash and its restart) is one condition too.
 *
 * @module
 */
import type { ActorRef } from "./actor_ref.ts";
import {
  type StorageCapacity,
  type StorageMessage,
  unwrapReply,
} from "./storage_actor_messages.ts";
import { HEALTH_ASK_TIMEOUT_MS, unansweredCondition } from "./_unanswered_condition.ts";

/** The stable code of a store that cannot be written (its writes are refused with it). */
export const STORAGE_UNWRITABLE = "storage_unwritable";

/** A condition of the node's store (see `server/health_routes.ts`'s `HealthCondition`). */
export interface StorageCondition {
  /** `storage`. */
  component: "storage";
  /** Always `degraded`: the node serves what it holds, and stores nothing new meanwhile. */
  status: "degraded";
  /** `storage_unwritable`; the ask's error code when the StorageActor did not answer. */
  code: string;
  /** The directory, the cause, and what to do. */
  message: string;
  /** Unix ms of the first refused write since one last succeeded (of the ask, when unanswered). */
  since: number;
}

/**
 * The store's faults as conditions of the node, for `/healthz`: none while it writes or the node
 * stores nothing (`--no-storage`).
 *
 * @example
 * ```ts ignore
 * const conditions = () => storageConditions(system.lookup<StorageMessage>("node/storage"));
 * ```
 */
export async function storageConditions(
  storage: ActorRef<StorageMessage> | undefined,
  now: () => number = Date.now,
): Promise<StorageCondition[]> {
  if (storage === undefined) return [];
  let capacity: StorageCapacity;
  try {
    capacity = unwrapReply<StorageCapacity>(
      await storage.ask({ type: "capacity" }, { timeoutMs: HEALTH_ASK_TIMEOUT_MS }),
    );
  } catch (error) {
    return [unansweredCondition("storage", "the storage actor", error, now())];
  }
  const fault = capacity.writeFault;
  if (fault !== undefined) {
    return [{
      component: "storage",
      status: "degraded",
      code: STORAGE_UNWRITABLE,
      message: fault.message,
      since: fault.since,
    }];
  }
  if (!capacity.readOnly) return [];
  return [{
    component: "storage",
    status: "degraded",
    code: STORAGE_UNWRITABLE,
    message: "the store opened read-only: its directory could not be written when the storage " +
      "actor started (a read-only filesystem, no permission, a failing disk); stored files are " +
      "served, puts, pins and peers' chunks are refused storage_unwritable until a restart finds " +
      "it writable",
    since: now(),
  }];
}
