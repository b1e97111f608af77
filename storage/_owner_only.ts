/**
 * The modes of what the chunk store creates: its owner's only, whatever the umask. Its packs hold
 * the bytes of every public file clients uploaded, in clear, and its records name what the node
 * holds and for whom. The node's data directory is 0700 (`node/data_dir_lock.ts`), but a copy or
 * backup of it (tar to a shared volume, `cp -r` into a world-readable place), or a store opened
 * in a directory of its own, keeps only each file's own mode: created with the umask they were
 * 0644, where the README says the files the node writes durably are 0600 (review s72, docs F1).
 * Not part of the public API.
 *
 * @module
 */

/** Each file the store creates: read and written by its owner only. */
export const STORE_FILE_MODE = 0o600;

/** Each directory the store creates: entered and listed by its owner only, as the data dir. */
export const STORE_DIR_MODE = 0o700;
