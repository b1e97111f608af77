/**
 * The help of the storage commands (`put`, `get`, `ls`, `gc`: `put_command.ts` and its siblings),
 * apart from them: this module imports nothing, so `cli.ts` answers their `--help` without loading
 * the store, whose imports read the environment as they load (cbor-x), and help needs no
 * permission.
 *
 * @module
 */

/** What `cli.ts put --help` prints. */
export const PUT_USAGE =
  `Usage: cli.ts put [--private] [--key-file FILE] [--name NAME] [--mime TYPE] [--data DIR]
                  [--quota BYTES] [--progress] [--init] FILE|DIR
  Store FILE (use - for stdin) or the directory DIR and print its CID; stderr says where.
  The data directory (--data, else VERIFLOW_DATA_DIR, else VERIFLOW_CONFIG's dataDir, else
  .veriflow) must be a node's (it holds a store or identity.key); --init makes a new store in
  any other. A public file's CID is its UnixFS id, the one
  \`ipfs add --cid-version 1 --raw-leaves\` gives; a directory's is the one
  \`ipfs add -r --hidden --cid-version 1 --raw-leaves\` gives: put DIR stores every entry,
  dotfiles included (plain \`ipfs add -r\` skips them, giving another CID). A file name that is
  not UTF-8 is refused (invalid_name): rename it first.
  --name and --mime are sealed in a private file's manifest (a public id has no name); each is
  at most 256 chars, and a directory takes neither (its entries are named by their files).

Examples:
  deno run -A cli.ts put README.md                    # prints its CID
  deno run -A cli.ts put --private --name notes.txt - < notes.txt`;

/** What `cli.ts get --help` prints. */
export const GET_USAGE =
  `Usage: cli.ts get CID|DIRCID/PATH [-o FILE] [--range START-END] [--key-file FILE] [--data DIR]
                  [--progress]
  Write the file (or bytes START..END-1; an END past the file reads to its end) to FILE or stdout;
  every chunk is verified. DIRCID/PATH names a file in a directory put DIR stored. A directory
  itself is not written: export DIRCID writes it as a CAR, which IPFS tools unpack.

Examples:
  deno run -A cli.ts get CID -o /tmp/readme.md
  deno run -A cli.ts get DIRCID/docs/a.txt -o /tmp/a.txt          # a file in a stored directory
  deno run -A cli.ts get CID --range 0-100 --data /srv/veriflow     # its first 100 bytes`;

/** What `cli.ts ls --help` prints. */
export const LS_USAGE = `Usage: cli.ts ls [--data DIR] [--json] [--verify]
  List the pinned files and the store's capacity, and count the objects no pinned file references
  (gc removes them). A file with chunks missing from the store is flagged DAMAGED; --verify also
  reads and hashes every chunk (slow: reads the whole store).

Examples:
  deno run -A cli.ts ls
  deno run -A cli.ts ls --verify --data /srv/veriflow`;

/** What `cli.ts gc --help` prints. */
export const GC_USAGE = `Usage: cli.ts gc [--grace-ms MS] [--data DIR] [--json]
  Remove the objects that no pinned file, replica held for a peer or running put references
  (the leftovers of an interrupted put, unpinned files) once they are older than the grace
  period: --grace-ms, default 600000 (10 min), what a put may take between storing an object
  and recording it. Safe while a node or other commands use the same directory.

Examples:
  deno run -A cli.ts gc
  deno run -A cli.ts gc --grace-ms 0 --json          # no put running: remove them all now`;
