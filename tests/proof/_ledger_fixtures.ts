/**
 * Receipts, assignments and ledger directories for the ledger's tests.
 *
 * @module
 */
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, signReceipt } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";

/** The requester whose assignments get work credited. */
export const requester: Identity = Identity.generate();

const PARAMS = { maxTokens: 64, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };
/** Every fixture job by its id, for {@link assigned}. */
const jobs = new Map<string, TextJob>();

/** Job `n`: a text job that names {@link requester} (so the requester can assign it). */
export function job(n: number): TextJob {
  const j: TextJob = {
    kind: "text",
    model: "bafkreimodel",
    prompt: `job ${n}`,
    params: { ...PARAMS },
    nonce: String(n),
    requester: toHex(requester.publicKey),
  };
  jobs.set(jobId(j), j);
  return j;
}

/** The id of job `n` ({@link job}). */
export function jobIdOf(n: number): string {
  return jobId(job(n));
}

/** A signed receipt of `by` for job `n` ({@link job}) with `tokens` tokens. */
export function receipt(n: number, tokens: number, by: Identity): Receipt {
  return signReceipt({
    v: 1,
    kind: "text",
    jobId: jobIdOf(n),
    model: "bafkreimodel",
    inputHash: "11".repeat(32),
    params: { ...PARAMS },
    outputHash: "22".repeat(32),
    commitment: { scheme: "vf-fp1", root: "33".repeat(32), chunkSize: 32, tokenBytes: 2 },
    tokenCount: tokens,
    timings: { startedAt: 0, firstTokenMs: 1, totalMs: 2 },
  }, by);
}

/** `r` signed again by its worker with `changes` (another claim for the same job). */
export function resigned(r: Receipt, changes: Partial<Receipt>, by: Identity): Receipt {
  const { sig: _sig, worker: _worker, ...unsigned } = r;
  return signReceipt({ ...unsigned, ...changes }, by);
}

/** The requester's signed assignment of `r`'s job to its worker: what gets it credited. */
export function assigned(r: Receipt): { assignment: unknown } {
  const j = jobs.get(r.jobId);
  if (j === undefined) throw new Error("not a fixture job");
  return { assignment: signAssignment({ job: j, worker: r.worker, issuedAt: 0 }, requester) };
}

/** Run `fn` with a fresh directory and a clock, removing the directory after. */
export async function withLedgerDir(
  fn: (dir: string, clock: { t: number }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir, { t: 1_000 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Copy every file of directory `from` into a new temporary directory (a crash-time image). */
export async function copyDir(from: string): Promise<string> {
  const to = await Deno.makeTempDir();
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
  return to;
}

/** Byte offsets of the frames of a ledger log (`[u32 length][entry]` each). */
export function frameOffsets(bytes: Uint8Array): number[] {
  const offsets: number[] = [];
  for (let o = 0; o + 4 <= bytes.length;) {
    offsets.push(o);
    o += 4 + new DataView(bytes.buffer, bytes.byteOffset + o).getUint32(0);
  }
  return offsets;
}

/**
 * Run `fn` with `fsync` made a no-op: building a ledger of thousands of receipts is then quick.
 * Durability is not what the building is for; the crashes the tests simulate are a close (or a
 * log cut at an entry's end) and an open.
 */
export async function withoutFsync<T>(fn: () => Promise<T>): Promise<T> {
  const proto = Deno.FsFile.prototype;
  const { sync, syncData } = proto;
  proto.sync = proto.syncData = () => Promise.resolve();
  try {
    return await fn();
  } finally {
    proto.sync = sync;
    proto.syncData = syncData;
  }
}
