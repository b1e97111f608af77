/**
 * A slow disk under a router's assigned-jobs file (`network/_assigned_job_file.ts`), for its
 * tests: every open of that file, or of a temporary file of it (`writeFileDurably`'s
 * `<path>.<uuid>.tmp`), is held until the test lets it go, and what is done to it is recorded in
 * order. Other files open as usual. Injected by wrapping `Deno.open` and `Deno.rename`, as
 * `_assigned_jobs_disk_fault.ts` does.
 *
 * @module
 */

/** The disk under one file (see the module doc), until {@link HeldDisk.restore}. */
export interface HeldDisk {
  /** Resolves once an open of the file is held. */
  readonly held: Promise<void>;
  /** Let every held open go, and every later one through at once. */
  release(): void;
  /**
   * What was done to the file, in order: `open` (the file itself: an append), `open tmp` (a
   * rewrite's temporary file), `renamed` (a rewrite landed); the test adds its own marks.
   */
  readonly ops: string[];
  /** Put `Deno.open` and `Deno.rename` back. */
  restore(): void;
}

/** Hold the opens of `path` (see the module doc). */
export function holdDisk(path: string): HeldDisk {
  const open = Deno.open;
  const rename = Deno.rename;
  const ops: string[] = [];
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let held = () => {};
  const disk: HeldDisk = {
    held: new Promise<void>((resolve) => held = resolve),
    release,
    ops,
    restore: () => {
      Deno.open = open;
      Deno.rename = rename;
    },
  };
  Deno.open = async (target: string | URL, options?: Deno.OpenOptions) => {
    const name = String(target);
    if (name === path || name.startsWith(`${path}.`)) {
      ops.push(name === path ? "open" : "open tmp");
      held();
      await released;
    }
    return open(target, options);
  };
  Deno.rename = async (from: string | URL, to: string | URL) => {
    await rename(from, to);
    if (String(to) === path) ops.push("renamed");
  };
  return disk;
}
