/**
 * The OS refusing to create files in one directory of a store that opened writable: what
 * `chattr +i store/pending` does under a running node (review s71, finding 3), injected without
 * root (CI may not be root, and root ignores mode bits): `Deno.open` throws, for paths under that
 * directory only, the error Deno throws then (`PermissionDenied`, `EPERM`, "os error 1"). Every
 * other open is Deno's own. `restore()` in a `finally`.
 *
 * @module
 */

/** The error Deno throws when the OS refuses to create `path` (`EPERM`). */
export function permissionDenied(path: string): Error {
  return Object.assign(
    new Deno.errors.PermissionDenied(`Operation not permitted (os error 1): open '${path}'`),
    { code: "EPERM" },
  );
}

/** Opens under `dir` refused (see the module doc); `refused` counts them. */
export interface RefusedOpens {
  /** Opens refused so far. */
  readonly refused: number;
  /** Deno's own `open` again. */
  restore(): void;
}

/** Refuse every `Deno.open` of a path under `dir` until `restore()`. */
export function refuseOpensUnder(dir: string): RefusedOpens {
  const open = Deno.open;
  let refused = 0;
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  Deno.open = ((path: string | URL, options?: Deno.OpenOptions) => {
    const name = path instanceof URL ? path.pathname : path;
    if (!name.startsWith(prefix)) return open(path, options);
    refused++;
    return Promise.reject(permissionDenied(name));
  }) as typeof Deno.open;
  return {
    get refused() {
      return refused;
    },
    restore: () => {
      Deno.open = open;
    },
  };
}
