/**
 * The peer set holder repair judges a start's departures against, kept across restarts
 * (`HolderRepairOptions.onJudged` and `judged`, `holder_repair.ts`): the storage peers the node
 * last knew, and those whose departure it has not repaired yet. Before (review s82 repair, F1) it
 * lived in memory only: a node down while holders left built a fresh store at its start, saw no
 * departure, and the chunks it alone still held stayed at one copy for good.
 *
 * **On disk**: `judged_peers.json` in the store's directory, one JSON object rewritten whole
 * (`writeFileDurably`: temporary file, `fsync`, rename), so a crash leaves the old set or the new
 * one: `{"format":"veriflow-judged-peers","version":1,"peers":["<hex id>", …]}`. A file that is
 * missing reads as no set (nothing to judge: a first start); one that does not parse is logged
 * and read the same way (the departures it named are left to the audits). Not part of the
 * public API.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";

/** The file's name in the store's directory. */
export const JUDGED_PEERS_FILE = "judged_peers.json";
const FORMAT = "veriflow-judged-peers";
const VERSION = 1;

/** The judged peer set on disk: read once at the start, rewritten on each change. */
export class JudgedPeers {
  readonly #path: string;
  readonly #log: ((line: string) => void) | undefined;
  /** The set read at the start. */
  readonly ids: readonly string[];
  /** The set waiting to be written (the newest only), and the write under way. */
  #next: readonly string[] | null = null;
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, ids: readonly string[], log?: (line: string) => void) {
    this.#path = path;
    this.ids = ids;
    this.#log = log;
  }

  /** Read the set at `path` (none: empty); `log` is told of a file that does not parse. */
  static async open(path: string, log?: (line: string) => void): Promise<JudgedPeers> {
    await removeTemporaries(dirname(path), (name) => name === basename(path)).catch(() => {});
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        log?.(`storage: reading ${path} failed (${String(error)}): no departure judged at start`);
      }
      return new JudgedPeers(path, [], log);
    }
    const ids = parse(text);
    if (ids === null) {
      log?.(`storage: ${path} is not a judged peer set: no departure judged at start`);
    }
    return new JudgedPeers(path, ids ?? [], log);
  }

  /** Write `ids` (whole, atomically, after the writes before it); a failed write is logged. */
  save(ids: readonly string[]): void {
    const first = this.#next === null;
    this.#next = ids;
    if (!first) return; // the write queued takes the newest set
    this.#writing = this.#writing.then(async () => {
      const next = this.#next!;
      this.#next = null;
      const file = JSON.stringify({ format: FORMAT, version: VERSION, peers: next }) + "\n";
      try {
        await writeFileDurably(this.#path, new TextEncoder().encode(file));
      } catch (error) {
        this.#log?.(
          `storage: writing ${this.#path} failed (${String(error)}): a restart judges the ` +
            "departures against the set written before",
        );
      }
    });
  }

  /** Resolves when the sets saved so far are written. */
  flush(): Promise<void> {
    return this.#writing;
  }
}

/** The ids of a judged peer set file, or null when it is not one. */
function parse(text: string): string[] | null {
  try {
    const value = JSON.parse(text);
    if (value?.format !== FORMAT || value.version !== VERSION) return null;
    const peers: unknown = value.peers;
    if (!Array.isArray(peers) || !peers.every((id) => typeof id === "string")) return null;
    return peers;
  } catch {
    return null;
  }
}
