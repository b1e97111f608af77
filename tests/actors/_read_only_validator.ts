/**
 * A ValidatorActor whose ledger refuses every write while the test says its disk is full (the
 * node's read-only state, `node/disk_room.ts`, hands the ledger `refuseWrite`: here a flag the
 * test flips), on a ledger clock the test moves, with its crashes counted and its log kept. For
 * `validator_read_only_test.ts` and `validator_read_only_restart_test.ts`. No clock is raced.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ValidatorActor, type ValidatorActorOptions } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { DiskFullError } from "../../storage/errors.ts";
import type { LedgerClock } from "./_validator_fixture.ts";

/** The disk as the ledger sees it: `full` refuses every write `disk_full`. */
export interface FakeDisk {
  full: boolean;
}

/** A validator's options but its ledger (its clock and the disk's refusal are the run's). */
export type ReadOnlySetup = Omit<ValidatorActorOptions, "ledger" | "finalizeIntervalMs">;

/** One system holding `node/validator` on `disk` and `clock`, its crashes counted. */
export class ReadOnlyRun {
  readonly system: ActorSystem;
  readonly counts = { crashes: 0, restarts: 0 };
  readonly lines: string[] = [];

  constructor(name: string, readonly disk: FakeDisk, readonly clock: LedgerClock) {
    this.system = new ActorSystem({ name });
    this.system.events.subscribe((event) => {
      if (event.name !== "node/validator") return;
      if (event.type === "crashed") this.counts.crashes++; // a failed start, too
      if (event.type === "restarted") this.counts.restarts++;
    });
  }

  /** Spawn `node/validator` (it finalizes only when told). */
  spawn(options: ReadOnlySetup): Promise<ActorRef<ValidatorMessage>> {
    return this.system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          // Receipts are signed in real time, the ledger's clock starts in 1970: no lead bound.
          maxReceiptLeadMs: Number.POSITIVE_INFINITY,
          log: (line) => this.lines.push(line),
          ...options,
          ledger: {
            now: () => this.clock.t,
            refuseWrite: () =>
              this.disk.full
                ? new DiskFullError(undefined, "read-only (test's full disk)")
                : undefined,
          },
          finalizeIntervalMs: 0,
        }),
    });
  }

  /** The validator registered now (a restart registers a new ref under the name). */
  get validator(): ActorRef<ValidatorMessage> {
    return this.system.lookup<ValidatorMessage>("node/validator")!;
  }

  /** Whether a line containing `text` was logged. */
  said(text: string): boolean {
    return this.lines.some((line) => line.includes(text));
  }

  /** Shut the system down. */
  async close(): Promise<void> {
    await this.system.shutdown();
  }
}
