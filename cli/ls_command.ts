/**
 * `cli.ts ls`: what the store of a node's data directory (`_command_store.ts`) holds and its
 * capacity, each pinned file's damage flagged (`_file_damage.ts`; `--verify` reads every chunk),
 * and the chunks held for peers checked. Returns a process exit code: 0 all well, 1 a storage
 * failure or damage found, 2 a usage error.
 *
 * @module
 */
import { printableLine } from "../node/log_format.ts";
import { commandDataDir } from "../node/default_data_dir.ts";
import { storageKey } from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { ChunkStore } from "../storage/chunk_store.ts";
import { type FileInfo, FileStore } from "../storage/file_store.ts";
import { formatBytes } from "../storage/progress_bar.ts";
import { checkReplicas } from "../storage/replica_check.ts";
import { countOf, parseCommand, reportErrors, usage, wrongOperands } from "./_command_support.ts";
import { openExistingStore } from "./_command_store.ts";
import { chunkTotalOf, damageLine, damageOf, type FileDamage } from "./_file_damage.ts";
import { printableName } from "./_printable_name.ts";
import { wasQuarantined } from "./_quarantined.ts";
import { LS_USAGE } from "./storage_help.ts";

/** What `ls` says of one pinned file. */
type ListedFile = (FileInfo & { damage?: FileDamage }) | {
  cid: string;
  error: string;
  /** The file's name from its pin's label, which outlives its root block. */
  name?: string;
  /** Its root block was found corrupt (now, or by an earlier read: in quarantine/). */
  corrupt?: boolean;
};

/**
 * `ls`'s exit code when a listed file is damaged or unreadable: 1, a storage failure, as
 * `_command_support.ts` maps every failure, so that `ls --verify || alert` tells a damaged store
 * from a healthy one after a crash (review s75 F4: it exited 0).
 */
const EXIT_DAMAGED = 1;

/** `ls`: what the store holds and its capacity; damaged files flagged. */
export async function runLs(args: string[]): Promise<number> {
  const parsed = parseCommand(args, {
    data: { type: "string" },
    json: { type: "boolean" },
    verify: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, LS_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) return usage(LS_USAGE, 0);
  const wrong = wrongOperands(positionals, [], LS_USAGE);
  if (wrong !== undefined) return wrong;
  const dataDir = await commandDataDir(values.data);
  let damaged = 0;
  /** Chunks held for peers that are missing or corrupt here. */
  let lostReplicas = 0;
  const code = await reportErrors(async () => {
    const store = await openExistingStore(dataDir);
    const files = new FileStore(store);
    const listed: ListedFile[] = [];
    // Every block the pinned files reach, to count what they do not (undefined: one is damaged).
    let reached: Set<string> | undefined = new Set<string>();
    // A damaged file's chunk count, as `ls` prints it: `info.chunks` are its root's links (a
    // manifest tree's few branches, a large UnixFS file's inner nodes), not its chunks.
    const chunkTotals = new Map<string, string>();
    for (const cid of await store.pins()) {
      try {
        const info: ListedFile = { ...await files.stat(cid), ...await store.pinLabel(cid) };
        reached?.add(storageKey(cid));
        const walked = await damageOf(store, cid, info.chunks, values.verify === true, reached);
        const { damage } = walked;
        if (damage.missing + damage.corrupt + (damage.invalid ?? 0) > 0) {
          info.damage = damage;
          reached = undefined; // a lost inner node hides what is below it
          chunkTotals.set(cid, await chunkTotalOf(files, info, walked));
        }
        listed.push(info);
      } catch (error) {
        reached = undefined;
        const failure = error instanceof VeriflowError ? error.code : String(error);
        // The read that found the root corrupt moved it to quarantine/; later reads miss it.
        const corrupt = failure === "corrupt_chunk" ||
          failure === "chunk_not_found" && await wasQuarantined(store.dir, cid);
        const name = (await store.pinLabel(cid).catch(() => undefined))?.name;
        listed.push({ cid, error: failure, name, corrupt });
      }
    }
    damaged = listed.filter((f) => "error" in f || f.damage).length;
    const stats = await store.stats();
    // The chunks held for peers too: their records outlive lost packs (review s79, F2).
    const replicas = await checkReplicas(store, { verify: values.verify === true });
    lostReplicas = replicas.missing + replicas.corrupt;
    if (values.json) {
      console.log(JSON.stringify({ files: listed, capacity: stats, replicas }, null, 2));
      return;
    }
    for (const f of listed) {
      if ("error" in f) {
        // Said as a leaf's damage is: which file, and what to do (review s75 F4).
        const what = f.corrupt
          ? "root block corrupt (moved to quarantine/)"
          : f.error === "chunk_not_found"
          ? "root block missing"
          : printableLine(`root block unreadable (${f.error})`);
        const name = f.name === undefined ? "" : `  ${printableName(f.name)}`;
        console.log(`${f.cid}${name}  DAMAGED: ${what}; put the file again`);
        continue;
      }
      const size = f.size === null ? "?" : formatBytes(f.size);
      // Any client of the node's API names a file: its control, C1 and bidi characters are
      // written out, so a name cannot set the title, clear the screen or overwrite the line
      // above (a DAMAGED flag), as `status` and the node's log write them (review s75 F4).
      const name = f.tier === "private" ? "(private)" : printableName(f.name ?? "");
      const damage = f.damage ? `  DAMAGED: ${damageLine(f.damage, chunkTotals.get(f.cid))}` : "";
      console.log(`${f.cid}  ${f.tier.padEnd(7)}  ${size.padStart(10)}  ${name}${damage}`);
    }
    const quota = stats.quotaBytes === null ? "no quota" : `quota ${formatBytes(stats.quotaBytes)}`;
    const held = stats.replicaCount > 0
      ? `, ${countOf(stats.replicaCount, "chunk")} held for peers`
      : "";
    // Counted in the usage and the quota; only the operator removes it (see ChunkStoreStats).
    const quarantined = stats.quarantineBytes > 0
      ? ` (${formatBytes(stats.quarantineBytes)} of it in quarantine/: bad copies set aside, ` +
        `delete them once looked at)`
      : "";
    console.log(
      `${countOf(listed.length, "file")}, ${countOf(stats.objectCount, "object")}${held}, ${
        formatBytes(stats.usedBytes)
      } used${quarantined}, ${quota}`,
    );
    if (lostReplicas > 0) {
      // Said as a file's damage is ("1 corrupt of 3 chunks"), and what it costs this node.
      const parts = [
        ...replicas.missing > 0 ? [`${replicas.missing} missing`] : [],
        ...replicas.corrupt > 0 ? [`${replicas.corrupt} corrupt (moved to quarantine/)`] : [],
      ];
      console.log(
        `DAMAGED: ${parts.join(", ")} of ${countOf(replicas.total, "chunk")} held for peers: ` +
          "this node fails the audits of the peers that gave them until they restore them; " +
          "check the disk",
      );
    }
    const unreferenced = reached && await countUnreferenced(store, reached);
    if (unreferenced) {
      console.log(
        `${unreferenced} objects no pinned file references (a running or interrupted put's, an ` +
          `unpinned file's): \`cli.ts gc\` removes them once older than the grace period`,
      );
    }
  }, "ls");
  if (code !== 0 || damaged + lostReplicas === 0) return code;
  if (damaged > 0) {
    console.error(`error: ${countOf(damaged, "file")} damaged (DAMAGED above): put each again`);
  }
  if (lostReplicas > 0) {
    console.error(
      `error: ${countOf(lostReplicas, "chunk")} held for peers missing or corrupt (DAMAGED above)`,
    );
  }
  return EXIT_DAMAGED;
}

/** Objects of `store` that are neither in `reached` nor held for a peer. */
async function countUnreferenced(store: ChunkStore, reached: Set<string>): Promise<number> {
  const replicas = new Set<string>();
  for await (const cid of store.replicas()) replicas.add(cid);
  let count = 0;
  for await (const cid of store.list()) {
    if (!reached.has(cid) && !replicas.has(cid)) count++;
  }
  return count;
}
