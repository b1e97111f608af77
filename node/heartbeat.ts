/**
 * The node's heartbeat: one log line every `everyMs` with what an operator checks first —
 * uptime and memory, jobs and tokens, peers, the validator's receipts (those it refused apart)
 * and verdicts, this node's own ledger account and — while its ledger cannot write — that it
 * cannot, while the node is read-only on a full disk (`disk_room.ts`) that it is, with the free
 * and needed bytes, and — once a wire limit has refused, ended or closed anything — what the node's wire
 * budget did (`describeWire`).
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import { PendingAsks } from "../actors/pending_asks.ts";
import type { Account, ValidatorMessage, ValidatorStats } from "../actors/validator_actor.ts";
import { recordedReceipts } from "../actors/recorded_receipts.ts";
import { ledgerWritesFailing } from "../actors/validator_messages.ts";
import type { InferencePort, InferenceStats } from "../inference/inference_port.ts";
import type { NetworkMessage, PeerInfo, StaticPeerState } from "../network/network_actor.ts";
import { describeUnreachable, unreachablePeers } from "../network/peer_conditions.ts";
import type { RegisteredModelHealth } from "../inference/model_registry.ts";
import type { WireBudgetReport } from "../protocols/wire_budget.ts";
import type { DiskRoomState } from "./disk_room.ts";

/** Options of {@link startHeartbeat}. */
export interface HeartbeatOptions {
  /** Milliseconds between lines; 0 disables the heartbeat. */
  everyMs: number;
  /** This node's key (its ledger account). */
  publicKey: Uint8Array;
  /** The inference port the edge serves, if any. */
  port?: InferencePort;
  /** Looks up the validator. */
  validator: () => ActorRef<ValidatorMessage> | undefined;
  /** Looks up the network actor. */
  network: () => ActorRef<NetworkMessage> | undefined;
  /** The loaded models' runtime health; a model whose workers are not all running is named. */
  models?: () => RegisteredModelHealth[];
  /**
   * The node's read-only state on a full disk (`disk_room.ts`): while it holds, every beat says
   * so, second after the uptime (writes refused is what the operator must act on). None: not said.
   */
  disk?: () => DiskRoomState;
  /** Where the line goes. */
  log: (line: string) => void;
}

/** A heartbeat ask is answered from memory; longer means the actor is wedged (and says so). */
const ASK_TIMEOUT_MS = 1_000;
/** KiB in bytes: the heartbeat shows the unread budget in KiB, as rss is shown in MiB. */
const BYTES_PER_KIB = 1024;

/**
 * Start the heartbeat; `stop()` ends it (a beat still waiting on an actor then logs nothing).
 * A beat is skipped while the one before it still waits.
 */
export function startHeartbeat(options: HeartbeatOptions): { stop(): void } {
  if (options.everyMs <= 0) return { stop() {} };
  const startedAt = performance.now();
  // One beat at a time: a beat waits up to ASK_TIMEOUT_MS per ask on a wedged actor, and beats
  // started behind it piled up and logged out of order. None logs once stopped (the node has).
  let beating = false;
  let stopped = false;
  // A beat's ask that timed out is still in the actor's mailbox: the next beat waits on it rather
  // than queue a copy behind it (review s74 F1).
  const asks = new PendingAsks();
  const ask = <M, R>(ref: ActorRef<M>, question: string, message: M): Promise<R> =>
    asks.ask<M, R>(ref, question, message, ASK_TIMEOUT_MS);
  const timer = setInterval(() => {
    if (beating) return;
    beating = true;
    void beat().finally(() => (beating = false));
  }, options.everyMs);
  async function part(what: string, read: () => Promise<string | undefined>): Promise<string> {
    try {
      return (await read()) ?? "";
    } catch (error) {
      return `${what}: ${(error as Error).message}`;
    }
  }
  async function beat(): Promise<void> {
    const parts = [
      `heartbeat up ${Math.round((performance.now() - startedAt) / 1000)}s`,
      `rss ${(Deno.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
      await part("disk", () => Promise.resolve(describeReadOnly(options.disk?.()))),
      await part("inference", async () => {
        // The unread budget's fields come only from a port that runs jobs itself.
        const s = await options.port?.stats() as
          | InferenceStats & { unreadTokenBytes?: number; unreadTokenEvictions?: number }
          | undefined;
        // Review s72: an operator could not see slow readers filling it, or evicted from it.
        const unread = s?.unreadTokenBytes === undefined
          ? ""
          : ` · unread ${(s.unreadTokenBytes / BYTES_PER_KIB).toFixed(0)} KiB ${
            s.unreadTokenEvictions ?? 0
          } evicted`;
        return s &&
          `jobs ${s.activeJobs} running ${s.queuedJobs} queued ${s.jobsFinished} done · tokens ${s.tokensGenerated}${unread}`;
      }),
      await part("models", () => {
        const troubled = (options.models?.() ?? []).filter((m) => m.status !== "ok");
        return Promise.resolve(troubled.map(describeModelHealth).join(" · ") || undefined);
      }),
      await part("network", async () => {
        const network = options.network();
        if (network === undefined) return undefined;
        const peers = await ask<NetworkMessage, PeerInfo[]>(network, "peers", { type: "peers" });
        // Keys, not connections: a peer connected twice (both nodes dialled each other) is one
        // worker, as on /metrics.
        const keys = (list: PeerInfo[]) => new Set(list.map((p) => p.key)).size;
        const workers = keys(peers.filter((p) => p.models.length > 0 && !p.convicted));
        const convicted = keys(peers.filter((p) => p.convicted));
        // Configured peers whose dials fail (review s74 F3: said once in the log, then never).
        const configured = await ask<NetworkMessage, StaticPeerState[]>(network, "static_peers", {
          type: "static_peers",
        });
        const down = unreachablePeers(configured);
        // Peers by key too (review s78 F4: one peer over two connections read `peers 2`); the
        // connections only when they differ from it.
        const connected = keys(peers);
        const connections = peers.length === connected ? "" : `${peers.length} connections, `;
        return `peers ${connected} (${connections}workers ${workers}` +
          (convicted > 0 ? `, convicted ${convicted})` : ")") +
          (down.length === 0 ? "" : ` · ${down.map(describeUnreachable).join(" · ")}`);
      }),
      await part("wire", async () => {
        const network = options.network();
        const report = network &&
          await ask<NetworkMessage, WireBudgetReport>(network, "wire", { type: "wire" });
        return report === undefined ? undefined : describeWire(report);
      }),
      await part("validator", async () => {
        const validator = options.validator();
        if (validator === undefined) return undefined;
        const s = await ask<ValidatorMessage, ValidatorStats>(validator, "stats", {
          type: "stats",
        });
        const a = await ask<ValidatorMessage, Account>(validator, "account", {
          type: "account",
          key: options.publicKey,
        });
        // Receipts recorded here, one per job: a job's receipt comes from its router and again
        // in each announcement, and those copies are shown apart; so are the receipts refused
        // (by the intake, by the ledger, or lost to a ledger write that failed), once any is.
        const r = recordedReceipts(s);
        const copies = `${r.copies} ${r.copies === 1 ? "copy" : "copies"}`;
        const refused = r.refused > 0 ? ` refused ${r.refused}` : "";
        const fault = s.ledgerWriteFault;
        return `receipts ${r.recorded} (${r.fromPeers} from peers, ${copies})${refused} ` +
          `challenged ${s.challenged} fraud ${s.verdicts.fraud} slashes ${s.slashes} · ` +
          `credit ${a.balance} stake ${a.stake} (locked ${a.locked})` +
          (!ledgerWritesFailing(fault)
            ? ""
            : ` · ledger writes failing (${fault.cause}, ${fault.failures} failed)`);
      }),
    ];
    if (!stopped) options.log(parts.filter((p) => p !== "").join(" · "));
  }
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}

/**
 * `wire refused 12 (handlers_per_peer 12) · streams ended 1 (credit_timeout 1) · connections
 * closed 2 (frame_timeout 2) · queued 1.5/256 MiB`, or undefined while no wire limit has refused,
 * ended or closed anything (a calm node's line stays short; `/metrics` has every figure).
 */
export function describeWire(report: WireBudgetReport): string | undefined {
  const counted = (counts: Record<string, number>) => {
    const seen = Object.entries(counts).filter(([, n]) => n > 0);
    const total = seen.reduce((sum, [, n]) => sum + n, 0);
    return { total, text: `${total} (${seen.map(([why, n]) => `${why} ${n}`).join(", ")})` };
  };
  const refused = counted(report.refusedBy);
  const ended = counted(report.streamsEnded);
  const closed = counted(report.connectionsClosed);
  if (refused.total + ended.total + closed.total === 0) return undefined;
  const mib = (bytes: number) => Number((bytes / 2 ** 20).toFixed(1));
  return [
    refused.total > 0 ? `wire refused ${refused.text}` : "wire",
    ended.total > 0 ? `streams ended ${ended.text}` : "",
    closed.total > 0 ? `connections closed ${closed.text}` : "",
    `queued ${mib(report.queuedBytes)}/${mib(report.limits.maxQueuedBytes)} MiB`,
  ].filter((p) => p !== "").join(" · ");
}

/**
 * `READ-ONLY (disk_full: 1048576 bytes free, 4194304 needed)` while the node is read-only on a
 * full disk; undefined while it writes (a calm node's line is as before).
 */
export function describeReadOnly(state: DiskRoomState | undefined): string | undefined {
  if (state === undefined || !state.readOnly) return undefined;
  return `READ-ONLY (disk_full: ${state.freeBytes} bytes free, ${state.needsBytes} needed)`;
}

/** `model NAME degraded: 0/1 workers running, 3 restarts`, for a model that is not `ok`. */
export function describeModelHealth(model: RegisteredModelHealth): string {
  const running = model.workers.filter((w) => w.state === "running").length;
  return `model ${model.name} ${model.status}: ${running}/${model.workers.length} workers ` +
    `running, ${model.restarts} restarts`;
}
