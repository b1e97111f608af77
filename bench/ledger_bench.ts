/**
 * Ledger open time and resident memory against the length of its history: a ledger of
 * `--entries` entries (default 1,000,000) beside one of 1,000, both at the same steady rate
 * (one entry a second, ten-minute challenge window, so both hold the same few hundred open
 * receipts), each opened in a fresh process. Goal (issue #11): the long ledger opens in ≤ 1 s
 * and its process's resident memory does not grow with its length.
 *
 * ```sh
 * deno run -A bench/ledger_bench.ts [--entries N] [--runs N]
 * ```
 *
 * Both ledgers are opened as a `kill -9` would leave them: the last checkpoint
 * `DEFAULT_CHECKPOINT_EVERY − 1` entries back, so an open verifies the longest tail it can meet.
 * Also printed: one finalize pass (nothing due) and a lookup of a receipt settled long ago.
 *
 * The ledgers are written directly (entries signed with WebCrypto's ed25519, which signs the same
 * bytes as the node's, no fsync per entry) through the ledger's own state, index and checkpoint
 * code; writing a million entries takes a few minutes. `--entries 100000` is quicker.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { Identity } from "../protocols/identity.ts";
import { fromHex, sha256Hex, toHex } from "../protocols/hash.ts";
import { type Verdict, verdictSigningBytes } from "../protocols/verdict.ts";
import { DEFAULT_CHECKPOINT_EVERY, Ledger } from "../proof/ledger.ts";
import {
  encodeEntryFrame,
  entrySigningBytes,
  FRAME_HEADER_BYTES,
  GENESIS_PREV,
  type LedgerEntry,
  type LedgerEntryKind,
} from "../proof/ledger_entry.ts";
import { LedgerState } from "../proof/ledger_state.ts";
import { INDEX_FILE, LedgerIndex, positionAfter } from "../proof/ledger_index.ts";
import { LOG_FILE } from "../proof/ledger_log.ts";
import {
  type LedgerCheckpoint,
  signCheckpoint,
  writeCheckpoint,
} from "../proof/ledger_checkpoint.ts";
import { median } from "./_stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    entries: { type: "string" },
    runs: { type: "string" },
    "child-open": { type: "string" },
    seed: { type: "string" },
    "end-at": { type: "string" },
    "final-jobs": { type: "string" },
  },
});

/** The short ledger every number is compared with. */
const BASELINE_ENTRIES = 1_000;
/** Goal from the issue: a million-entry ledger opens within a second. */
const GOAL_OPEN_MS = 1_000;
/** "Independent of length": the long ledger's process within 10 % of the short one's RSS. */
const GOAL_RSS_RATIO = 1.1;
/** One entry a second, and the node's default ten-minute window: ~260 open receipts. */
const ENTRY_SPACING_MS = 1_000;
const WINDOW_MS = 10 * 60_000;
const WORKERS = 16;
/** Tokens per job and the slash they lock (price 1, multiplier 20). */
const TOKENS = 64;
const LOCKED = TOKENS * 20;
/** One job in ten is challenged (the node's default probability). */
const CHALLENGE_EVERY = 10;
const START_MS = 1_700_000_000_000;
const WRITE_BLOCK_BYTES = 1 << 20;
const INDEX_BATCH = 4096;

/** An ed25519 key in WebCrypto for `identity` (PKCS#8 around its seed). */
async function webCryptoKey(identity: Identity): Promise<CryptoKey> {
  const pkcs8 = new Uint8Array(48);
  pkcs8.set(fromHex("302e020100300506032b657004220420"));
  pkcs8.set(identity.exportSecretKey(), 16);
  return await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
}

async function sign(key: CryptoKey, bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("Ed25519", key, bytes as Uint8Array<ArrayBuffer>));
}

const receiptIdOf = (job: number) => sha256Hex(new TextEncoder().encode(`receipt ${job}`));
const jobIdOf = (job: number) => sha256Hex(new TextEncoder().encode(`job ${job}`));

/**
 * Write a ledger of exactly `entries` entries into `dir` as the node would have after running
 * at a steady rate: stake deposits, then jobs — receipt, a challenge on one in ten (challenge,
 * verdict, cleared), final once its window has closed. Returns a time at which nothing is due
 * yet and how many jobs are final (jobs `0 … finalJobs − 1`, settled in order).
 */
async function buildLedger(
  dir: string,
  entries: number,
  owner: Identity,
  validator: Identity,
): Promise<{ endAt: number; finalJobs: number }> {
  await Deno.mkdir(dir, { recursive: true });
  const ownerKey = await webCryptoKey(owner);
  const validatorKey = await webCryptoKey(validator);
  const ownerHex = toHex(owner.publicKey);
  const workers = Array.from({ length: WORKERS }, () => Identity.generate().publicKey);
  const requester = toHex(Identity.generate().publicKey);
  const file = await Deno.open(join(dir, LOG_FILE), { write: true, create: true, truncate: true });
  const index = LedgerIndex.open(join(dir, INDEX_FILE));
  const state = new LedgerState();
  let buffer: Uint8Array[] = [];
  let buffered = 0;
  const flush = async () => {
    for (const frame of buffer) {
      for (let off = 0; off < frame.length;) off += await file.write(frame.subarray(off));
    }
    buffer = [];
    buffered = 0;
  };
  let seq = 0, head = GENESIS_PREV, offset = 0, last = 0, t = START_MS;
  let checkpoint: Omit<LedgerCheckpoint, "sig" | "signer" | "v"> | undefined;
  const checkpointAt = Math.max(1, entries - (DEFAULT_CHECKPOINT_EVERY - 1));
  const append = async (kind: LedgerEntryKind, body: Record<string, unknown>) => {
    const unsigned = { seq, prev: head, at: t, kind, body, signer: owner.publicKey };
    const entry: LedgerEntry = {
      ...unsigned,
      sig: await sign(ownerKey, entrySigningBytes(unsigned)),
    };
    const frame = encodeEntryFrame(entry);
    state.apply(entry);
    if (seq % INDEX_BATCH === 0) {
      if (seq > 0) index.commit();
      index.begin();
    }
    index.apply(entry, positionAfter(entry, offset, offset + frame.length, ownerHex));
    head = sha256Hex(frame.subarray(FRAME_HEADER_BYTES)); // the frame holds the entry's canonical bytes
    last = offset;
    offset += frame.length;
    seq++;
    t += ENTRY_SPACING_MS;
    buffer.push(frame);
    buffered += frame.length;
    if (buffered >= WRITE_BLOCK_BYTES) await flush();
    if (seq === checkpointAt) {
      checkpoint = { seq, head, last, end: offset, at: t, state: state.snapshot() };
    }
  };

  await append("genesis", { owner: ownerHex, version: 1 });
  for (const w of workers) {
    if (seq < entries) await append("stake", { key: toHex(w), amount: 1e9 });
  }
  const open: { job: number; pendingUntil: number }[] = [];
  let finalJobs = 0;
  for (let job = 0; seq < entries; job++) {
    while (seq < entries && open.length > 0 && open[0].pendingUntil <= t) {
      await append("final", { receiptId: receiptIdOf(open.shift()!.job) });
      finalJobs++;
    }
    if (seq >= entries) break;
    const worker = workers[job % WORKERS];
    const receiptId = receiptIdOf(job);
    const pendingUntil = t + WINDOW_MS;
    await append("receipt", {
      receiptId,
      jobId: jobIdOf(job),
      model: "bafkreibenchmodel",
      worker: toHex(worker),
      tokens: TOKENS,
      outputHash: sha256Hex(new TextEncoder().encode(`output ${job}`)),
      credit: TOKENS,
      requester,
      locked: LOCKED,
      pendingUntil,
    });
    open.push({ job, pendingUntil });
    if (job % CHALLENGE_EVERY === 0) {
      if (seq < entries) await append("challenge", { receiptId });
      const unsigned = {
        v: 1,
        subject: "inference",
        subjectId: receiptId,
        target: worker,
        outcome: "valid" as const,
        reason: "ok",
        issuedAt: t,
        validator: validator.publicKey,
      };
      const verdict: Verdict = {
        ...unsigned,
        sig: await sign(validatorKey, verdictSigningBytes(unsigned)),
      };
      if (seq < entries) await append("verdict", { verdict });
      if (seq < entries) await append("cleared", { receiptId });
    }
  }
  await flush();
  await file.syncData();
  file.close();
  index.commit();
  index.close();
  await writeCheckpoint(dir, signCheckpoint(checkpoint!, owner));
  // "Now" for the measurements: just before the next window closes, so a finalize pass finds
  // nothing due and writes nothing (every run opens the same files).
  return { endAt: (open[0]?.pendingUntil ?? t) - 1, finalJobs };
}

/** What one fresh process measured. */
interface OpenMeasurement {
  openMs: number;
  rssMiB: number;
  heapMiB: number;
  openReceipts: number;
  finalizeMs: number;
  lookupUs: number;
}

/** Child mode: open the ledger in `dir`, measure, print JSON (and leave it as found). */
async function openAndMeasure(
  dir: string,
  seed: string,
  endAt: number,
  finalJobs: number,
): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const owner = Identity.fromSecretKey(fromHex(seed));
  const start = performance.now();
  const ledger = await Ledger.open(dir, owner, {
    now: () => endAt,
    economics: { challengeWindowMs: WINDOW_MS },
  });
  const openMs = performance.now() - start;
  const finalizeStart = performance.now();
  const due = await ledger.finalizeDue();
  const finalizeMs = performance.now() - finalizeStart;
  if (due.length !== 0) throw new Error(`${due.length} receipts were due: the fixture is wrong`);
  const lookups = 1_000;
  const lookupStart = performance.now();
  for (let i = 0; i < lookups; i++) {
    const job = (i * 7919) % finalJobs; // spread over the whole history
    if (ledger.receipt(receiptIdOf(job))?.status !== "final") throw new Error("lookup failed");
  }
  const lookupUs = (performance.now() - lookupStart) * 1000 / lookups;
  gc?.();
  const memory = Deno.memoryUsage();
  const result: OpenMeasurement = {
    openMs,
    rssMiB: memory.rss / 2 ** 20,
    heapMiB: memory.heapUsed / 2 ** 20,
    openReceipts: ledger.workingSet().openReceipts,
    finalizeMs,
    lookupUs,
  };
  console.log(JSON.stringify(result));
  Deno.exit(0); // as a kill would: no closing checkpoint, so every run opens the same files
}

async function openInChild(
  dir: string,
  seed: string,
  built: { endAt: number; finalJobs: number },
): Promise<OpenMeasurement> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      "--child-open",
      dir,
      "--seed",
      seed,
      "--end-at",
      String(built.endAt),
      "--final-jobs",
      String(built.finalJobs),
    ],
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error("the open child failed");
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

async function main(): Promise<void> {
  const entries = Number(values.entries ?? 1_000_000);
  const runs = Number(values.runs ?? 3);
  const owner = Identity.generate();
  const seed = toHex(owner.exportSecretKey());
  const validator = Identity.generate();
  const root = await Deno.makeTempDir({ prefix: "veriflow-ledger-bench-" });
  try {
    const sizes = [BASELINE_ENTRIES, entries];
    const built: {
      entries: number;
      dir: string;
      endAt: number;
      finalJobs: number;
      bytes: number;
    }[] = [];
    for (const n of sizes) {
      const dir = `${root}/${n}`;
      const started = performance.now();
      const { endAt, finalJobs } = await buildLedger(dir, n, owner, validator);
      const buildS = (performance.now() - started) / 1000;
      const bytes = (await Deno.stat(join(dir, LOG_FILE))).size;
      built.push({ entries: n, dir, endAt, finalJobs, bytes });
      console.log(
        `built a ${n.toLocaleString("en")}-entry ledger (${
          (bytes / 2 ** 20).toFixed(1)
        } MiB log) in ${buildS.toFixed(0)} s`,
      );
    }
    const results = built.map(() => [] as OpenMeasurement[]);
    for (let r = 0; r < runs; r++) {
      // Interleaved, so a machine that slows down mid-run colours both alike.
      for (const [i, b] of built.entries()) results[i].push(await openInChild(b.dir, seed, b));
    }
    const med = (i: number, key: keyof OpenMeasurement) => median(results[i].map((m) => m[key]));
    console.log(
      `\nledger open (checkpoint ${
        DEFAULT_CHECKPOINT_EVERY - 1
      } entries back, as after kill -9), fresh process each, median of ${runs}`,
    );
    console.log(
      "entries        log MiB   open ms   RSS MiB  heap MiB  open receipts  finalize ms  lookup µs",
    );
    for (const [i, b] of built.entries()) {
      console.log(
        `${b.entries.toLocaleString("en").padEnd(13)} ${
          (b.bytes / 2 ** 20).toFixed(1).padStart(8)
        } ${med(i, "openMs").toFixed(0).padStart(9)} ${med(i, "rssMiB").toFixed(1).padStart(9)} ${
          med(i, "heapMiB").toFixed(1).padStart(9)
        } ${med(i, "openReceipts").toFixed(0).padStart(14)} ${
          med(i, "finalizeMs").toFixed(2).padStart(12)
        } ${med(i, "lookupUs").toFixed(1).padStart(10)}`,
      );
    }
    const openMs = med(1, "openMs");
    const rssRatio = med(1, "rssMiB") / med(0, "rssMiB");
    console.log(
      `\n${entries.toLocaleString("en")} vs ${
        BASELINE_ENTRIES.toLocaleString("en")
      } entries: open ${(openMs / med(0, "openMs")).toFixed(2)}×, RSS ${
        rssRatio.toFixed(2)
      }×, heap ${(med(1, "heapMiB") / med(0, "heapMiB")).toFixed(2)}×`,
    );
    console.log(
      `goal: open ≤ ${GOAL_OPEN_MS} ms: ${openMs <= GOAL_OPEN_MS ? "met" : "not met"} (${
        openMs.toFixed(0)
      } ms); ` +
        `RSS independent of length (≤ ${GOAL_RSS_RATIO}× the short ledger's): ${
          rssRatio <= GOAL_RSS_RATIO ? "met" : "not met"
        } (${rssRatio.toFixed(2)}×)`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (values["child-open"]) {
  await openAndMeasure(
    values["child-open"],
    values.seed!,
    Number(values["end-at"]),
    Number(values["final-jobs"]),
  );
} else await main();
