/**
 * The help of the exchange commands (`exchange_commands.ts`: `export`, `import`, `share`), apart
 * from them: this module imports nothing, so `cli.ts` answers their `--help` without loading the
 * store, whose imports read the environment as they load (cbor-x), and help needs no permission.
 *
 * @module
 */

/** Where a share link points by default: a node on this machine, default port. */
export const DEFAULT_NODE_URL = "http://127.0.0.1:8080";

/** What `cli.ts export --help` prints. */
export const EXPORT_USAGE = `Usage: cli.ts export CID [--data DIR] [-o FILE]
  Write the DAG of CID (every block, depth first) as a CAR v1 file to stdout or FILE.

Examples:
  deno run -A cli.ts export CID -o file.car
  deno run -A cli.ts export CID --data /srv/veriflow > file.car`;

/** What `cli.ts import --help` prints. */
export const IMPORT_USAGE = `Usage: cli.ts import [--data DIR] [--init] FILE|-
  Read a CAR file, verify every block against its CID, store and pin its roots; prints them.
  DIR must be a node's data directory (it holds a store or identity.key); --init makes a new
  store in any other. Ctrl-C stops it (exit 130) saying how many blocks it stored, unpinned:
  cli.ts gc removes them.

Examples:
  deno run -A cli.ts import file.car
  deno run -A cli.ts export CID --data A | deno run -A cli.ts import --data B -`;

/** What `cli.ts share --help` prints. */
export const SHARE_USAGE =
  `Usage: cli.ts share CID [--expires DURATION] [--password] [--url URL] [--key-file F] [--data DIR]
       cli.ts share revoke ID [--data DIR]
       cli.ts share open LINK|- [-o FILE] [--password]
       cli.ts share list [CID] [--data DIR]
  Print a link that lets someone without your key read private file CID (the key rides in the
  link's #fragment, or wrapped under a password read from stdin/the terminal). Every chunk is
  decrypted first: a file whose chunks do not open with its keys is refused (manifest_mismatch).
  This node serves the link until it expires (--expires 30m|24h|7d; default never) or is
  revoked. Revoking only stops this node serving it: the keys in the link stay valid for anyone
  who has them and the file's ciphertext (other nodes, /ipfs, copies). To take access back, put
  the file again and unpin the old copy (delete DATA/store/pins/CID, then cli.ts gc; there is
  no unpin command). URL: the node serving it, an http(s) origin with no
  path, query or fragment (default ${DEFAULT_NODE_URL}; on another machine give the address
  others reach it by); any other is refused (exit 2) before a share is made.
  share open -: the link from stdin (a terminal prompts without echo), not as an argument,
  which ps and the shell history show to others; with --password, its 2nd line is the password.

Examples:
  deno run -A cli.ts share CID --expires 24h          # the link; stderr: its ID
  deno run -A cli.ts share open - -o notes.txt < link.txt
  deno run -A cli.ts share list CID                   # each share: ID, file, expiry, created
  deno run -A cli.ts share revoke ID`;
