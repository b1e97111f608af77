/**
 * A disk that fills up under a router's assigned-jobs file (`network/_assigned_job_file.ts`), for
 * its tests: every file opened at that path, or at a temporary file of it (`writeFileDurably`'s
 * `<path>.<uuid>.tmp`), writes only while the disk has room; a write finds what room is left,
 * writes that much (a short write, as a full disk gives), and the next one throws `ENOSPC`. Other
 * files (the ledger's) write as usual. Injected by wrapping `Deno.open`, so no mount is needed.
 *
 * @module
 */

/** The disk under one file: its room, which the test sets. */
export interface FullDisk {
  /** Bytes that may still be written there (Infinity: room enough). */
  room: number;
  /** Put `Deno.open` back. */
  restore(): void;
}

/** `ENOSPC` as Deno reports it. */
function noSpace(): Error {
  return Object.assign(new Error("No space left on device (os error 28) (simulated)"), {
    code: "ENOSPC",
  });
}

/** A disk under `path` with `room` bytes left (see the module doc), until `restore`. */
export function diskUnder(path: string, room = Infinity): FullDisk {
  const open = Deno.open;
  const disk: FullDisk = {
    room,
    restore: () => {
      Deno.open = open;
    },
  };
  Deno.open = async (target: string | URL, options?: Deno.OpenOptions) => {
    const file = await open(target, options);
    const name = String(target);
    if (name !== path && !name.startsWith(`${path}.`)) return file;
    const write = file.write.bind(file);
    file.write = async (bytes: Uint8Array) => {
      if (disk.room <= 0) throw noSpace();
      const n = Math.min(disk.room, bytes.length);
      const written = await write(bytes.subarray(0, n));
      disk.room -= written;
      return written;
    };
    return file;
  };
  return disk;
}
