/**
 * Wires the dashboard (`server/dashboard_routes.ts`) to the node: each thing the page shows is
 * one ask to the actor that owns it (peers from the NetworkActor, counters and the account from
 * the ValidatorActor, usage from the StorageActor, rounds from the training coordinator and
 * the trainer), the tree and its restarts from the actor system, and the validator's activity
 * from {@link NodeActivity}. Also keeps the operator token
 * that lets the dashboard change state.
 *
 * @module
 */
import { join } from "node:path";
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ActorSystem } from "../actors/actor_system.ts";
import { formatEvent } from "../actors/events.ts";
import { PendingAsks } from "../actors/pending_asks.ts";
import type { StorageAnswers, StorageMessage } from "../actors/storage_actor_messages.ts";
import { unwrapReply } from "../actors/storage_actor_messages.ts";
import type { Account, ValidatorMessage, ValidatorStats } from "../actors/validator_actor.ts";
import { recordedReceipts } from "../actors/recorded_receipts.ts";
import type { NetworkMessage, PeerInfo, StaticPeerState } from "../network/network_actor.ts";
import { toHex } from "../protocols/hash.ts";
import { keepToOwnerAsync } from "../protocols/owner_only.ts";
import { writeFileDurably } from "../proof/_durable_file.ts";
import type { DashboardSources, TrainingView } from "../server/dashboard_routes.ts";
import type { CoordinatorMessage, CoordinatorStatus } from "../training/round_coordinator.ts";
import { EXCLUDED_SAMPLE, excludedCountsOf } from "../training/excluded_summary.ts";
import type { TrainerMessage, TrainerStats } from "../training/trainer_service.ts";
import type { NodeActivity } from "./node_activity.ts";
import type { DiskRoomState } from "./disk_room.ts";
import { VERIFLOW_VERSION } from "./version.ts";

/** Asks from the dashboard are answered from memory; longer means a wedged actor. */
const ASK_TIMEOUT_MS = 1_000;

/** What {@link dashboardSources} reads. */
export interface DashboardWiring {
  /** The node's key. */
  publicKey: Uint8Array;
  /** The actor system (tree and lifecycle events). */
  system: ActorSystem;
  /** Name of the inference actor, whose per-job children are left out of the feed. */
  inferenceName: string;
  /** Looks up the network actor. */
  network: () => ActorRef<NetworkMessage> | undefined;
  /** Looks up the validator. */
  validator: () => ActorRef<ValidatorMessage> | undefined;
  /** Looks up the storage actor. */
  storage: () => ActorRef<StorageMessage> | undefined;
  /** The validator's activity, when the node validates. */
  activity?: NodeActivity;
  /** Looks up the training coordinator (`--coordinate-training`). */
  coordinator?: () => ActorRef<CoordinatorMessage> | undefined;
  /** Looks up the trainer (`--train`). */
  trainer?: () => ActorRef<TrainerMessage> | undefined;
  /** The node's read-only state on a full disk (`disk_room.ts`), shown with the storage. */
  disk?: () => DiskRoomState;
}

/**
 * Finished rounds the training view carries: the page's rounds chart keeps this many (its table
 * the last 20 of them). A coordinator runs until stopped by default, and every snapshot (one a
 * second, to every open page) carried each round it ever finished.
 */
const TRAINING_ROUNDS_SHOWN = 200;
/**
 * Rounds whose sample of left-out trainers the view carries: the rows the page's table lists
 * (`server/dashboard/training_panel.js`). The rounds it only charts carry their counts: each
 * sample is a few KB, and 200 of them went out every second (review s73 F4).
 */
const TRAINING_ROWS_LISTED = 20;

/** Losses are kept in nats per byte; the page shows bits per byte, as the bench does. */
const bitsPerByte = (nats: number): number => nats / Math.LN2;

/** The training panel's view of this node's coordinator and trainer (undefined: neither). */
async function trainingView(
  wiring: DashboardWiring,
  asks: PendingAsks,
): Promise<TrainingView | undefined> {
  const coordinator = wiring.coordinator?.();
  const trainer = wiring.trainer?.();
  if (coordinator === undefined && trainer === undefined) return undefined;
  const [status, stats] = await Promise.all([
    coordinator &&
    asks.ask<CoordinatorMessage, CoordinatorStatus>(
      coordinator,
      "status",
      { type: "status" },
      ASK_TIMEOUT_MS,
    ),
    trainer &&
    asks.ask<TrainerMessage, TrainerStats>(trainer, "stats", { type: "stats" }, ASK_TIMEOUT_MS),
  ]);
  return {
    coordinator: status && {
      round: status.round,
      model: status.model,
      initialBitsPerByte: status.initialLoss === undefined
        ? undefined
        : bitsPerByte(status.initialLoss),
      trainers: status.trainers.length,
      convicted: status.convicted,
      ...(status.unbacked === undefined ? {} : { unbacked: status.unbacked }),
      ...(status.heldOut === undefined ? {} : { heldOut: status.heldOut }),
      rounds: status.history.slice(-TRAINING_ROUNDS_SHOWN).map((r, i, shown) => {
        const counts = excludedCountsOf(r);
        return {
          round: r.round,
          model: r.model,
          bitsPerByte: r.heldOutLoss === undefined ? undefined : bitsPerByte(r.heldOutLoss),
          accepted: r.accepted.length,
          // A record read from an older coordinator lists every one: the sample's bound here too.
          excluded: i < shown.length - TRAINING_ROWS_LISTED
            ? []
            : r.excluded.slice(0, EXCLUDED_SAMPLE),
          ...(counts.length === 0 ? {} : { excludedCounts: counts }),
        };
      }),
    },
    trainer: stats && {
      rounds: stats.rounds,
      challenges: stats.challenges,
      coordinators: stats.joined.length,
      current: stats.current,
      losses: stats.losses.map(bitsPerByte),
    },
  };
}

/** The dashboard's sources for this node. */
export function dashboardSources(wiring: DashboardWiring): DashboardSources {
  // Every open page asks each second: a question not yet answered is not asked again (review s74
  // F1), whichever page or panel asks it.
  const asks = new PendingAsks();
  const peers = async () => {
    const network = wiring.network();
    return network && await asks.ask<NetworkMessage, PeerInfo[]>(
      network,
      "peers",
      { type: "peers" },
      ASK_TIMEOUT_MS,
    );
  };
  return {
    node: { key: toHex(wiring.publicKey), version: VERIFLOW_VERSION },
    tree: () => wiring.system.tree(),
    onLifecycle: (listener) =>
      wiring.system.events.subscribe((event) => {
        // Per-job children start and stop all the time; their crashes still show.
        if (event.name.startsWith(`${wiring.inferenceName}/`) && event.type !== "crashed") return;
        listener({
          type: event.type,
          name: event.name,
          time: event.time,
          detail: formatEvent(event),
        });
      }),
    peers,
    // Configured peers' dial states: the panel shows one that cannot be reached (review s74 F3).
    staticPeers: async () => {
      const network = wiring.network();
      return network && await asks.ask<NetworkMessage, StaticPeerState[]>(
        network,
        "static_peers",
        { type: "static_peers" },
        ASK_TIMEOUT_MS,
      );
    },
    validator: async () => {
      const validator = wiring.validator();
      if (validator === undefined) return undefined;
      const [stats, account] = await Promise.all([
        asks.ask<ValidatorMessage, ValidatorStats>(
          validator,
          "stats",
          { type: "stats" },
          ASK_TIMEOUT_MS,
        ),
        asks.ask<ValidatorMessage, Account>(
          validator,
          "account",
          { type: "account", key: wiring.publicKey },
          ASK_TIMEOUT_MS,
        ),
      ]);
      // Recorded receipts counted here, as the heartbeat counts them: the page and `status` show
      // these, never `received` (copies and refusals among it).
      return { stats, account, receipts: recordedReceipts(stats) };
    },
    storage: async () => {
      const storage = wiring.storage();
      if (storage === undefined) return undefined;
      // Counts the actor keeps (`file_counts`), not the whole `list`: that reads every pinned
      // manifest, longer than the ask's timeout with a few thousand pins (review s74 F1).
      const [capacity, counts, known] = await Promise.all([
        asks.ask(storage, "capacity", { type: "capacity" }, ASK_TIMEOUT_MS).then((r) =>
          unwrapReply<StorageAnswers["capacity"]>(r)
        ),
        asks.ask(storage, "file_counts", { type: "file_counts" }, ASK_TIMEOUT_MS).then((r) =>
          unwrapReply<StorageAnswers["file_counts"]>(r)
        ),
        peers().catch(() => undefined),
      ]);
      // One per key (its oldest connection, listed first): a peer connected twice holds its
      // files once, and its hello on each connection says the same bytes.
      const seen = new Set<string>();
      const storagePeers = (known ?? []).filter((p) => {
        if (!p.roles.includes("storage") || seen.has(p.key)) return false;
        seen.add(p.key);
        return true;
      });
      return {
        capacity,
        files: counts.files,
        publicFiles: counts.publicFiles,
        chunks: counts.chunks,
        storagePeers: storagePeers.length,
        peerBytes: storagePeers.reduce((n, p) => n + (p.storage?.usedBytes ?? 0), 0),
        // Read-only (a full disk): `status` says it, with the free bytes and what is needed.
        disk: wiring.disk?.(),
      };
    },
    activity: wiring.activity,
    training: () => trainingView(wiring, asks),
  };
}

/** Bytes of an operator token: 128 bits, not guessable. */
const TOKEN_BYTES = 16;

/**
 * The operator token in `<dataDir>/operator.token` (mode 0600), created on first start: the
 * dashboard asks for it before it runs a job. Delete the file to have a new one made.
 */
export async function loadOrCreateOperatorToken(dataDir: string): Promise<string> {
  const path = join(dataDir, "operator.token");
  try {
    const token = (await Deno.readTextFile(path)).trim();
    if (token.length >= 16) {
      await keepToOwnerAsync(path);
      return token;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const token = toHex(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));
  // Atomic and durable (review s75 F3), owner-only (0600) whatever was there: a token torn or
  // lost by a crash after the operator copied it would silently be replaced by a new one.
  await writeFileDurably(path, new TextEncoder().encode(token + "\n"));
  return token;
}
