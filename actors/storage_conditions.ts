/**
 * The node's store as conditions of the node, for `/healthz` (`server/health_routes.ts`), as the
 * ledger is (`ledger_conditions.ts`): a store that cannot be written is the `degraded` condition
 * `storage_unwritable` — opened read-only (its directory refused writes when the StorageActor
 * started: `StorageCapacity.readOnly`, until a restart finds it writable), or a write the OS
 * refused since (`StorageCapacity.writeFault`, `_storage_write_faults.ts`: a directory turned
 * read-only, no permission, a failing device; until a write succeeds). The node still serves
 * what it holds; puts, pins and peers' chunks are refused `storage_unwritable` (503). Review s71,
 * finding 3: such a node answered `ok`. A store with no room is the `degraded` condition
 * `storage_disk_full`: a write refused `disk_full` (507) lately (`StorageCapacity.diskFull`).
 * Free space under the store's own floor (`replicaMinFreeBytes`: peers' chunks refused, the node's
 * own puts not yet) is the `degraded` condition `storage_disk_low`, its own code so an alert tells
 * "refusing my puts" from "refusing replicas" (review verify4, F5). Review s74 F2: a node refusing
 * every put with `disk_full` answered `ok`. A StorageActor that does not answer within 2 s
 * (wedged, or down between a crash and its restart) is one condition too.
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
import { PendingAsks } from "./pending_asks.ts";
import { ConditionOnsets } from "./condition_onsets.ts";

/** The stable code of a store that cannot be written (its writes are refused with it). */
export const STORAGE_UNWRITABLE = "storage_unwritable";
/** The stable code of a store whose disk has no room (its writes are refused `disk_full`). */
export const STORAGE_DISK_FULL = "storage_disk_full";
/** The stable code of a store whose disk is under its floor: peers' chunks are refused. */
export const STORAGE_DISK_LOW = "storage_disk_low";

/** A condition of the node's store (see `server/health_routes.ts`'s `HealthCondition`). */
export interface StorageCondition {
  /** `storage`. */
  component: "storage";
  /** Always `degraded`: the node serves what it holds, and stores nothing new meanwhile. */
  status: "degraded";
  /**
   * `storage_unwritable`, `storage_disk_full`, `storage_disk_low`; the ask's code when the actor
   * did not answer.
   */
  code: string;
  /** The directory, the cause, and what to do. */
  message: string;
  /** Unix ms of the first refused write since one last succeeded (of the ask, when unanswered). */
  since: number;
}

/**
 * The store's faults as conditions of the node, for `/healthz`: none while it writes or the node
 * stores nothing (`--no-storage`). `asks`, kept by the caller across checks, sends no new ask
 * while the last is unanswered (health probes come every second: `pending_asks.ts`); `onsets`,
 * kept by the caller too, remembers when a condition with no time of its own (opened read-only,
 * free space under the floor) was first seen, its `since`.
 *
 * @example
 * ```ts ignore
 * const conditions = () => storageConditions(system.lookup<StorageMessage>("node/storage"));
 * ```
 */
export async function storageConditions(
  storage: ActorRef<StorageMessage> | undefined,
  now: () => number = Date.now,
  asks: PendingAsks = new PendingAsks(),
  onsets: ConditionOnsets = new ConditionOnsets(),
): Promise<StorageCondition[]> {
  if (storage === undefined) return [];
  let capacity: StorageCapacity;
  try {
    capacity = unwrapReply<StorageCapacity>(
      await asks.ask(storage, "capacity", { type: "capacity" }, HEALTH_ASK_TIMEOUT_MS),
    );
  } catch (error) {
    return [unansweredCondition("storage", "the storage actor", error, now())];
  }
  return onsets.check((since) => capacityConditions(capacity, (key) => since(key, now())));
}

/** The conditions `capacity` shows; `onset(key)` answers when the one named `key` began. */
function capacityConditions(
  capacity: StorageCapacity,
  onset: (key: string) => number,
): StorageCondition[] {
  const conditions = diskConditions(capacity, onset);
  const fault = capacity.writeFault;
  if (fault !== undefined) {
    return [...conditions, {
      component: "storage",
      status: "degraded",
      code: STORAGE_UNWRITABLE,
      message: fault.message,
      since: fault.since,
    }];
  }
  if (!capacity.readOnly) return conditions;
  return [...conditions, {
    component: "storage",
    status: "degraded",
    code: STORAGE_UNWRITABLE,
    message: "the store opened read-only: its directory could not be written when the storage " +
      "actor started (a read-only filesystem, no permission, a failing disk); stored files are " +
      "served, puts, pins and peers' chunks are refused storage_unwritable until a restart finds " +
      "it writable",
    since: onset("read_only"),
  }];
}

/** The store's disk with no room, as a condition (see the module doc): none while it has room. */
function diskConditions(
  capacity: StorageCapacity,
  onset: (key: string) => number,
): StorageCondition[] {
  const full = capacity.diskFull;
  if (full !== undefined) {
    return [{
      component: "storage",
      status: "degraded",
      code: STORAGE_DISK_FULL,
      message: `${full.failures} write(s) refused disk_full: ${full.message}` +
        (capacity.diskFreeBytes === null ? "" : ` (${capacity.diskFreeBytes} bytes free now)`),
      since: full.since,
    }];
  }
  const free = capacity.diskFreeBytes;
  if (capacity.minFreeBytes > 0 && free !== null && free < capacity.minFreeBytes) {
    return [{
      component: "storage",
      status: "degraded",
      code: STORAGE_DISK_LOW,
      message: `the store's disk has ${free} bytes free, under the ${capacity.minFreeBytes} the ` +
        "store keeps (storage.replicaMinFreeBytes): peers' chunks are refused, and the node's own " +
        "puts soon will be; free space on it",
      since: onset("disk_low"),
    }];
  }
  return [];
}
