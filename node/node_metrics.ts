/**
 * The node's own series on `/metrics`, beside the inference ones the app registers: proving
 * (receipts signed), validation (receipts seen, challenged, verdicts by outcome), this node's
 * ledger account, and process memory. Operators watch the proof pipeline the same way they
 * watch tokens per second.
 *
 * One collector per source (process, prover, validator, network, wire), each registered under its
 * name: a source that does not answer in time (a validator with a long mailbox) leaves only its
 * own series out of that scrape, counted by the registry, and the rest are served.
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import { PendingAsks } from "../actors/pending_asks.ts";
import type { ProverMessage, ProverStats } from "../actors/prover_actor.ts";
import type { Account, ValidatorMessage, ValidatorStats } from "../actors/validator_actor.ts";
import type { NetworkMessage, PeerInfo, StaticPeerState } from "../network/network_actor.ts";
import type { MetricSample, MetricsCollector } from "../server/metrics_registry.ts";
import type { RegisteredModelHealth } from "../inference/model_registry.ts";
import type { ActorTreeNode } from "../actors/actor_system.ts";
import type { WireBudgetReport } from "../protocols/wire_budget.ts";
import {
  type StorageAnswers,
  type StorageMessage,
  unwrapReply,
} from "../actors/storage_actor_messages.ts";

/** What {@link nodeCollectors} reads. */
export interface NodeCollectorSources {
  /** The node's public key (its ledger account). */
  publicKey: Uint8Array;
  /** Looks up the prover, if the node runs one. */
  prover: () => ActorRef<ProverMessage> | undefined;
  /** Looks up the validator, if the node runs one. */
  validator: () => ActorRef<ValidatorMessage> | undefined;
  /** Looks up the network actor, if the node runs one. */
  network: () => ActorRef<NetworkMessage> | undefined;
  /** The loaded models' runtime health. */
  models?: () => RegisteredModelHealth[];
  /** Looks up the storage actor, if the node runs one. */
  storage?: () => ActorRef<StorageMessage> | undefined;
  /** The supervision tree now (restarts per actor). */
  tree?: () => ActorTreeNode;
}

/** A short ask: a metrics scrape must not hang on a busy actor. */
const SCRAPE_ASK_TIMEOUT_MS = 1_000;

/**
 * Most `veriflow_peer_versions` series at once, `other` included: the versions of an upgrade in
 * progress (two or three) with room to spare, while peers that each state a version of their own
 * cannot make a series apiece (review s77 vstr F1).
 */
export const MAX_PEER_VERSION_SERIES = 16;

/** The label of the connections past {@link MAX_PEER_VERSION_SERIES}' most common versions. */
export const OTHER_PEER_VERSIONS = "other";

/** A gauge's sample. */
function gauge(name: string, help: string, value: number): MetricSample {
  return { name, help, type: "gauge", value };
}

/**
 * The node's collectors by name (`actors`, `storage`, `process`, `models`, `prover`,
 * `validator`, `network`, `wire`).
 */
export function nodeCollectors(sources: NodeCollectorSources): Record<string, MetricsCollector> {
  // Scrapes come every few seconds, from several scrapers: a question not yet answered is not
  // asked again, so a slow actor's mailbox does not fill with copies (review s74 F1).
  const asks = new PendingAsks();
  const ask = <M, R>(ref: ActorRef<M>, question: string, message: M): Promise<R> =>
    asks.ask<M, R>(ref, question, message, SCRAPE_ASK_TIMEOUT_MS);
  return {
    models: () =>
      (sources.models?.() ?? []).flatMap((model) => {
        const labels = { model: model.cid };
        const workers = (lane: string, state: string) =>
          model.workers.filter((w) => w.lane === lane && w.state === state).length;
        const lanes = [...new Set(model.workers.map((w) => w.lane))];
        return [
          {
            name: "veriflow_model_worker_restarts_total",
            help: "Model workers restarted after a crash.",
            type: "counter" as const,
            value: model.restarts,
            labels,
          },
          {
            name: "veriflow_model_worker_threads_abandoned",
            help:
              "Model worker threads terminated as hung; each may keep a core until the process ends.",
            type: "gauge" as const,
            value: model.abandonedThreads ?? 0,
            labels,
          },
          ...lanes.flatMap((lane) =>
            (["running", "restarting", "failed"] as const).map((state) => ({
              name: "veriflow_model_workers",
              help: "Model workers by lane and state (failed: given up after too many crashes).",
              type: "gauge" as const,
              value: workers(lane, state),
              labels: { ...labels, lane, state },
            }))
          ),
        ];
      }),
    actors: () => {
      const samples: MetricSample[] = [];
      const walk = (node: ActorTreeNode) => {
        // A temporary actor is never restarted (its count is 0 for good) and lives for one
        // piece of work: the inference actor's runner of each job, named after the job. A series
        // of each would grow Prometheus' series with every job peers and clients send.
        if (node.kind !== "system" && node.restart !== "temporary") {
          samples.push({
            name: "veriflow_actor_restarts_total",
            help: "Restarts of each actor and supervisor in the supervision tree.",
            type: "counter",
            value: node.restarts,
            labels: { actor: node.name, kind: node.kind },
          });
        }
        node.children.forEach(walk);
      };
      const tree = sources.tree?.();
      if (tree !== undefined) walk(tree);
      return samples;
    },
    storage: async () => {
      const storage = sources.storage?.();
      if (storage === undefined) return [];
      const c = unwrapReply<StorageAnswers["capacity"]>(
        await ask(storage, "capacity", { type: "capacity" }),
      );
      const network = sources.network();
      const peers = network &&
        await ask<NetworkMessage, PeerInfo[]>(network, "peers", { type: "peers" }).catch(() =>
          undefined
        );
      return [
        gauge(
          "veriflow_storage_used_bytes",
          "Bytes the chunk store charges against its quota: every copy of every object plus its on-disk overhead (512 B per copy, 4 KiB per pack).",
          c.usedBytes,
        ),
        gauge(
          "veriflow_storage_quota_bytes",
          "The store's quota (-1: none).",
          c.quotaBytes ?? -1,
        ),
        // Review s74 F2: a disk filling up showed nowhere until puts failed (-1: the OS would not say).
        gauge(
          "veriflow_storage_disk_free_bytes",
          "Free bytes of the store's filesystem (-1: unknown).",
          c.diskFreeBytes ?? -1,
        ),
        gauge("veriflow_storage_objects", "Stored objects (chunks and manifests).", c.objectCount),
        gauge("veriflow_storage_pinned_files", "Files pinned here.", c.pinCount),
        gauge(
          "veriflow_storage_replicas",
          "Chunks held here for other nodes (replication).",
          c.replicaCount,
        ),
        gauge(
          "veriflow_storage_replica_bytes",
          "Bytes of the chunks held here for other nodes, 512 B each included: what storage.replicaQuotaBytes caps.",
          c.replicaBytes,
        ),
        gauge(
          "veriflow_storage_replica_quota_bytes",
          "The cap on what peers may place here (-1: none of its own).",
          c.replicaQuotaBytes ?? -1,
        ),
        // Review s79 F1: copies a holder was never given (it joined, or a file was put with the
        // CLI beside the node) showed nowhere while they trickled in over hours.
        gauge(
          "veriflow_storage_chunks_short",
          "Chunks of this node's files short of a copy on some holder: being copied by a catch-up, or waiting to retry (0: every holder has its copies).",
          c.chunksShort ?? 0,
        ),
        gauge(
          "veriflow_storage_peers",
          "Connected peers with the storage role: where files are replicated (0: local only).",
          // Per key: a peer connected twice holds files once (`NetworkActor`'s holders).
          onePerKey((peers ?? []).filter((p) => p.roles.includes("storage"))).length,
        ),
        // By reason only: which peer is in the log line (a series per peer key would grow with
        // every peer ever met). A stand-in store that does not count them gives none.
        ...Object.entries(c.replicaFailures ?? {}).map(([reason, value]) => ({
          name: "veriflow_storage_replica_failures_total",
          help: "Storage peers' failed reads, writes, proofs and repair copies, by reason: " +
            "corrupt (bytes not matching the CID), missing, timeout, full, error. The log " +
            "names the peer.",
          type: "counter" as const,
          value,
          labels: { reason },
        })),
      ];
    },
    process: () => [{
      name: "veriflow_process_rss_bytes",
      help: "Resident set size of the node process.",
      type: "gauge",
      value: Deno.memoryUsage().rss,
    }],
    prover: async () => {
      const prover = sources.prover();
      if (prover === undefined) return [];
      const s = await ask<ProverMessage, ProverStats>(prover, "stats", { type: "stats" });
      return [
        {
          name: "veriflow_prover_receipts_signed_total",
          help: "Receipts signed.",
          type: "counter",
          value: s.proven,
        },
        {
          name: "veriflow_prover_failed_total",
          help: "Token streams that ended without a receipt (cancelled or failed).",
          type: "counter",
          value: s.failed,
        },
        {
          name: "veriflow_prover_active_jobs",
          help: "Jobs being proven now.",
          type: "gauge",
          value: s.active,
        },
      ];
    },
    validator: async () => {
      const validator = sources.validator();
      if (validator === undefined) return [];
      const samples: MetricSample[] = [];
      const t = await ask<ValidatorMessage, ValidatorStats>(validator, "stats", { type: "stats" });
      const counter = (name: string, help: string, value: number): MetricSample => ({
        name,
        help,
        type: "counter",
        value,
      });
      samples.push(
        counter(
          "veriflow_validator_receipts_total",
          "Receipts handed to the validator.",
          t.received,
        ),
        counter(
          "veriflow_validator_receipts_from_peers_total",
          "Receipts announced by peers.",
          t.fromPeers,
        ),
        counter(
          "veriflow_validator_receipt_copies_total",
          "Receipts among those handed in that this ledger already held (copies of one job's receipt).",
          t.copies,
        ),
        counter("veriflow_validator_refused_total", "Receipts the ledger refused.", t.refused),
        counter(
          "veriflow_validator_own_receipts_total",
          "This node's own receipts: recorded and announced, never challenged here.",
          t.own,
        ),
        counter("veriflow_validator_challenges_total", "Receipts challenged.", t.challenged),
        counter(
          "veriflow_validator_peer_verdicts_total",
          "Verdicts signed by peers and recorded in this ledger.",
          t.peerVerdicts,
        ),
        counter(
          "veriflow_validator_fraud_proofs_checked_total",
          "Fraud proofs checked (own and from peers).",
          t.fraudProofsChecked,
        ),
        counter(
          "veriflow_validator_slashes_total",
          "Slashes in this ledger: confirmed fraud proofs and withheld proof data.",
          t.slashes,
        ),
        counter(
          "veriflow_validator_unresolved_total",
          "Challenges this validator could not decide (the job is not paid).",
          t.unresolved,
        ),
        counter(
          "veriflow_validator_new_key_pledges_refused_total",
          "Peers' stake pledges of keys this ledger never saw, not recorded because their " +
            "address group's or the node's budget of new keys was spent (a flood of new keys " +
            "from few addresses); the sender sends them again later.",
          t.newKeyPledgesRefused,
        ),
      );
      samples.push({
        name: "veriflow_validator_open_challenges",
        help: "Challenges queued or running: the depth of the validation queue.",
        type: "gauge",
        value: t.openChallenges,
      });
      samples.push({
        name: "veriflow_validator_fraud_proofs_checking",
        help: "Fraud proofs taken and being checked (queued or running).",
        type: "gauge",
        value: t.fraudProofsChecking,
      });
      for (const [outcome, value] of Object.entries(t.streamClaims)) {
        samples.push({
          name: "veriflow_validator_stream_claims_total",
          help: "Stream claims from this node's router checked here, by outcome.",
          type: "counter",
          value,
          labels: { outcome },
        });
      }
      for (const [outcome, value] of Object.entries(t.streamProofs)) {
        samples.push({
          name: "veriflow_validator_stream_proofs_total",
          help: "Peers' stream proofs checked here, by outcome, or skipped at intake.",
          type: "counter",
          value,
          labels: { outcome },
        });
      }
      for (const [outcome, value] of Object.entries(t.verdicts)) {
        samples.push({
          name: "veriflow_validator_verdicts_total",
          help: "Verdicts signed, by outcome.",
          type: "counter",
          value,
          labels: { outcome },
        });
      }
      const account = await ask<ValidatorMessage, Account>(validator, "account", {
        type: "account",
        key: sources.publicKey,
      });
      samples.push(
        {
          name: "veriflow_ledger_balance",
          help: "This node's credited balance.",
          type: "gauge",
          value: account.balance,
        },
        {
          name: "veriflow_ledger_stake",
          help: "This node's stake.",
          type: "gauge",
          value: account.stake,
        },
        {
          name: "veriflow_ledger_stake_locked",
          help: "Stake locked behind pending receipts.",
          type: "gauge",
          value: account.locked,
        },
      );
      return samples;
    },
    wire: async () => {
      const network = sources.network();
      if (network === undefined) return [];
      const report = await ask<NetworkMessage, WireBudgetReport>(network, "wire", {
        type: "wire",
      });
      return wireSamples(report);
    },
    network: async () => {
      const network = sources.network();
      if (network === undefined) return [];
      const [peers, configured] = await Promise.all([
        ask<NetworkMessage, PeerInfo[]>(network, "peers", { type: "peers" }),
        ask<NetworkMessage, StaticPeerState[]>(network, "static_peers", { type: "static_peers" }),
      ]);
      return [
        // Review s74 F3: a configured peer that could not be reached showed only in the log. One
        // series per configured address: as many as the configuration lists, less this node's own
        // address (review s78 F3: it is this node, neither up nor down).
        ...configured.filter((p) => !p.self).map((p) => ({
          name: "veriflow_static_peer_up",
          help: "1 while a connection dialled to a configured peer (--peer) is open, else 0; " +
            "/healthz names one whose dials fail (peer_unreachable).",
          type: "gauge" as const,
          value: p.up ? 1 : 0,
          labels: { address: p.address },
        })),
        // Peers by key, as the heartbeat, `status` and the dashboard count them (review s78 F4: a
        // peer connected twice, each node dialling the other, was counted as two peers).
        {
          name: "veriflow_peers",
          help: "Peers connected now, by key: a peer connected twice is one " +
            "(veriflow_peer_connections counts the connections).",
          type: "gauge",
          value: onePerKey(peers).length,
        },
        {
          name: "veriflow_peer_connections",
          help: "Peer connections open now (a peer both dialled and dialling in has two).",
          type: "gauge",
          value: peers.length,
        },
        {
          name: "veriflow_peer_workers",
          help: "Connected peers that listed a model (jobs can be forwarded to them): not " +
            "one this node's ledger has slashed (the heartbeat's count of workers).",
          type: "gauge",
          // Per key: a worker connected twice is one worker (jobs go to the key).
          value: onePerKey(peers.filter((p) => p.models.length > 0 && !p.convicted)).length,
        },
        // The peer table: one series per peer key, its first connection's facts as labels. Per
        // key, not per connection: two dials to one address gave two series with one label set
        // (review s78 F4), an exposition parsers refuse. Not the version its hello states: every
        // hello may state another, and each would start a new series of the operator's (review
        // s76 F1: one connection made 200 in 0.4 s). Versions are counted apart, below.
        ...onePerKey(peers).map((p) => ({
          name: "veriflow_peer_info",
          help: "One per peer key (its oldest connection's facts): key, address (host:port or " +
            "swarm:KEY), direction, models listed, whether this node's ledger has slashed it " +
            "(no jobs go to it), and the roles its signed hello states.",
          type: "gauge" as const,
          value: 1,
          labels: {
            key: p.key,
            address: p.address,
            outbound: String(p.outbound),
            models: String(p.models.length),
            convicted: String(p.convicted),
            roles: p.roles.join(","),
          },
        })),
        ...versionSamples(peers),
        // Load as each worker's last hello states it (what routing weighs).
        ...onePerKey(peers.filter((p) => p.load !== undefined)).map((p) => ({
          name: "veriflow_peer_jobs",
          help: "Jobs running or queued on a worker peer, from its last signed hello.",
          type: "gauge" as const,
          value: p.load!.running + p.load!.queued,
          labels: { key: p.key },
        })),
        ...onePerKey(peers.filter((p) => p.storage !== undefined)).map((p) => ({
          name: "veriflow_peer_stored_bytes",
          help: "Bytes a storage peer holds, from its last signed hello.",
          type: "gauge" as const,
          value: p.storage!.usedBytes,
          labels: { key: p.key },
        })),
      ];
    },
  };
}

/**
 * Peer connections by the software version their first hello stated (`0.1.0`: the hello's
 * grammar, `protocols/peer_hello.ts`), one series per version connected now: as many as the
 * versions among the peers, not one per peer, so an upgrade's progress shows without a series
 * per key and version. A connection's first version is counted for its whole life: one that
 * stated another in each hello made a new series with each (review s77 vstr F1). The most
 * common versions are kept (ties by name, so a scrape does not swap them), the rest counted under
 * {@link OTHER_PEER_VERSIONS} (a peer that states `other` is counted there too: one series).
 * Connections with no hello yet are left out.
 */
function versionSamples(peers: readonly PeerInfo[]): MetricSample[] {
  const counts = new Map<string, number>();
  let other = 0;
  for (const { firstVersion } of peers) {
    if (firstVersion === undefined) continue;
    if (firstVersion === OTHER_PEER_VERSIONS) other++;
    else counts.set(firstVersion, (counts.get(firstVersion) ?? 0) + 1);
  }
  const ranked = [...counts].sort(([a, m], [b, n]) => n - m || (a < b ? -1 : a > b ? 1 : 0));
  const room = ranked.length + (other > 0 ? 1 : 0) <= MAX_PEER_VERSION_SERIES
    ? ranked.length
    : MAX_PEER_VERSION_SERIES - 1;
  for (const [, value] of ranked.slice(room)) other += value;
  const kept = ranked.slice(0, room);
  if (other > 0) kept.push([OTHER_PEER_VERSIONS, other]);
  return kept.map(([version, value]) => ({
    name: "veriflow_peer_versions",
    help: "Peer connections open now by the software version their first signed hello on the " +
      `connection stated; at most ${MAX_PEER_VERSION_SERIES} versions, the least common ` +
      `counted as version="${OTHER_PEER_VERSIONS}".`,
    type: "gauge",
    value,
    labels: { version },
  }));
}

/**
 * The node's wire budget (`protocols/wire_budget.ts`, shared by every peer connection) as
 * samples: what it holds beside each bound, then what each bound refused, ended or closed. By
 * limit and reason only: the log names the peer (a series per key would grow with every peer).
 */
function wireSamples(report: WireBudgetReport): MetricSample[] {
  return [
    gauge(
      "veriflow_wire_handlers",
      "Peer requests running on all peer connections.",
      report.handlers,
    ),
    gauge(
      "veriflow_wire_max_handlers",
      "network.wire.maxHandlers: past it peer requests are answered busy.",
      report.limits.maxHandlers,
    ),
    gauge("veriflow_wire_streams", "Streams served on all peer connections.", report.streams),
    gauge(
      "veriflow_wire_max_streams",
      "network.wire.maxStreams: past it peer streams are answered busy.",
      report.limits.maxStreams,
    ),
    gauge(
      "veriflow_wire_queued_bytes",
      "Bytes queued for all peer connections' transports, held against network.wire.maxQueuedBytes.",
      report.queuedBytes,
    ),
    gauge(
      "veriflow_wire_max_queued_bytes",
      "network.wire.maxQueuedBytes: past it peer requests that are answered are refused busy.",
      report.limits.maxQueuedBytes,
    ),
    ...Object.entries(report.refusedBy).map(([limit, value]) => ({
      name: "veriflow_wire_refused_total",
      help: "Peer messages answered busy, by the bound that refused them: the node's " +
        "(handlers, handlers_per_peer, streams, streams_per_peer, queued_bytes) or the " +
        "connection's own (connection_requests, connection_queued_bytes).",
      type: "counter" as const,
      value,
      labels: { limit },
    })),
    ...Object.entries(report.streamsEnded).map(([reason, value]) => ({
      name: "veriflow_wire_streams_ended_total",
      help: "Streams served that a limit ended: credit_timeout (no credit for " +
        "streamCreditTimeoutMs), busy (the requester not reading what it was sent).",
      type: "counter" as const,
      value,
      labels: { reason },
    })),
    // frame_timeout is always listed (0 until one), so an alert on it has a series to read.
    ...Object.entries({ frame_timeout: 0, ...report.connectionsClosed }).map((
      [reason, value],
    ) => ({
      name: "veriflow_wire_connections_closed_total",
      help: "Peer connections closed for a limit or the peer's fault, by reason: frame_timeout " +
        "(a frame not whole frameTimeoutMs after its first bytes), peer_timeout, " +
        "too_many_refusals, frame_too_large, truncated_frame.",
      type: "counter" as const,
      value,
      labels: { reason },
    })),
  ];
}

/**
 * The first connection of each peer key in `peers` (the table lists a key's connections oldest
 * first, and a key may be connected twice): series labelled by key alone must not repeat one.
 */
function onePerKey(peers: PeerInfo[]): PeerInfo[] {
  const seen = new Set<string>();
  return peers.filter((p) => {
    if (seen.has(p.key)) return false;
    seen.add(p.key);
    return true;
  });
}
