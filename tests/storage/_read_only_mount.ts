/**
 * A directory on a read-only mount, injected without root (CI may be root, and root ignores mode
 * bits): under `dir`, `Deno.mkdir` and every `Deno.open` that would write (write, append,
 * create, truncate) throw what Deno throws on such a mount (`EROFS`, "os error 30"); reads are
 * Deno's own, so a file that is not there is `NotFound`, as on the mount. `restore()` in a
 * `finally`. (`_refused_opens.ts` refuses every open, reads too: a directory nobody may enter.)
 *
 * @module
 */

/** The error Deno throws when a read-only filesystem refuses `what` of `path`. */
export function readOnlyFilesystem(what: string, path: string): Error {
  return Object.assign(new Error(`Read-only file system (os error 30): ${what} '${path}'`), {
    code: "EROFS",
  });
}

/** A read-only mount over `dir` (see the module doc); `refused` counts the refusals. */
export interface ReadOnlyMount {
  /** Makes and writing opens refused so far. */
  readonly refused: number;
  /** Deno's own `mkdir` and `open` again. */
  restore(): void;
}

/** Refuse every make and writing open under `dir` (or of `dir` itself) until `restore()`. */
export function readOnlyMount(dir: string): ReadOnlyMount {
  const { mkdir, open } = Deno;
  let refused = 0;
  const under = (path: string | URL) => {
    const name = path instanceof URL ? path.pathname : path;
    return name === dir || name.startsWith(dir.endsWith("/") ? dir : `${dir}/`) ? name : undefined;
  };
  Deno.mkdir = ((path: string | URL, options?: Deno.MkdirOptions) => {
    const name = under(path);
    if (name === undefined) return mkdir(path, options);
    refused++;
    return Promise.reject(readOnlyFilesystem("mkdir", name));
  }) as typeof Deno.mkdir;
  Deno.open = ((path: string | URL, options?: Deno.OpenOptions) => {
    const name = under(path);
    const writes = options?.write || options?.append || options?.create || options?.createNew ||
      options?.truncate;
    if (name === undefined || !writes) return open(path, options);
    refused++;
    return Promise.reject(readOnlyFilesystem("open", name));
  }) as typeof Deno.open;
  return {
    get refused() {
      return refused;
    },
    restore: () => {
      Deno.mkdir = mkdir;
      Deno.open = open;
    },
  };
}
