/**
 * Giving back the memory that large transfers freed, so a node's RSS follows its live memory
 * while its allocator keeps the buffers the model reuses every step.
 *
 * The two workloads want opposite things from glibc's malloc. Decoding allocates the same large
 * buffers every step (onnxruntime-node's outputs, copied into new ArrayBuffers: the KV cache,
 * hundreds of KiB to MBs): they should come back from the arenas warm. Measured on the 2-core VM
 * with `small`, a fixed 256 KiB mmap threshold (what `deno task start` set before) mapped and
 * faulted them in afresh every step — 400 to 1,500 page faults a token with a 384-token context,
 * 2–6× slower decoding — and glibc's defaults let 8 concurrent streams stall together for
 * 100–260 ms at a time (167–255 tokens/s). Storage moves 256 KiB blocks through once each: kept by
 * the arenas, they left a process 40–50 MB larger after a big put.
 *
 * So `deno task start` now keeps memory (`MALLOC_MMAP_THRESHOLD_` 64 MiB, `MALLOC_TRIM_THRESHOLD_`
 * 1 GiB, `MALLOC_TOP_PAD_` 64 MiB, two arenas: `MALLOC_ARENA_MAX=2`), and the storage path gives
 * back what it freed itself: glibc's `malloc_trim(0)` after every {@link TRIM_EVERY_BYTES} a
 * transfer moves and when a large one ends (`docs/STORAGE.md`, "RSS on every run"). Without glibc,
 * or without FFI permission, releasing does nothing.
 *
 * @module
 */

/** Bytes a transfer moves between two releases. */
export const TRIM_EVERY_BYTES = 32 * 1024 * 1024;

/** glibc's `malloc_trim(0)`, or null where it cannot be called. */
function libcTrim(): (() => void) | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const lib = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    return () => void lib.symbols.malloc_trim(0n);
  } catch {
    return null; // not glibc, or no --allow-ffi
  }
}

/** Counts what transfers move and releases freed memory every so many bytes. */
export class FreedMemory {
  #trim: (() => void) | null | undefined;
  readonly #everyBytes: number;
  #since = 0;

  /**
   * @param trim What releases freed memory (default glibc's `malloc_trim(0)`, looked up on first
   *   use; null: nothing).
   * @param everyBytes Bytes moved between two releases.
   */
  constructor(trim?: (() => void) | null, everyBytes: number = TRIM_EVERY_BYTES) {
    this.#trim = trim;
    this.#everyBytes = everyBytes;
  }

  /**
   * Release freed memory now (a transfer ended).
   * @returns Whether anything was asked to release it.
   */
  release(): boolean {
    this.#since = 0;
    if (this.#trim === undefined) this.#trim = libcTrim();
    if (this.#trim === null) return false;
    this.#trim();
    return true;
  }

  /** A transfer moved `bytes`: release freed memory once `everyBytes` have moved since the last. */
  moved(bytes: number): void {
    this.#since += bytes;
    if (this.#since >= this.#everyBytes) this.release();
  }

  /**
   * A transfer ended: release freed memory if an eighth of `everyBytes` moved since the last
   * release. A small file's get (a prompt, a gateway hit) costs no release, so the model's warm
   * buffers are not given back on every job.
   */
  ended(): void {
    if (this.#since >= this.#everyBytes / 8) this.release();
  }
}

/** The process's one {@link FreedMemory}: the allocator is the process's. */
export const freedMemory: FreedMemory = new FreedMemory();
