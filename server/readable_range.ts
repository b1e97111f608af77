/**
 * The opener a file read (`/v1/files/{cid}`, `/ipfs/{cid}`) gives `rangedResponse`, with the leaves
 * of the range it is asked for checked first (`storage/unixfs.ts` `assertRangeReadable`): a file
 * whose leaf is lost (from disk, set aside in `quarantine/`, never fetched) is answered as a missing
 * block is, `404 chunk_not_found`, and not with a `200`, its length, then a cut body (review s76
 * F3). A `HEAD` is checked the same way, so it promises no `200` its `GET` cannot keep.
 *
 * @module
 */
import { type CidCodec, DAG_PB_CODEC } from "../protocols/cid.ts";
import { assertRangeReadable } from "../storage/unixfs.ts";

/** Opens bytes `[start, end)` of a file, as `rangedResponse` calls it. */
export type RangeOpener = (start: number, end: number) => Promise<ReadableStream<Uint8Array>>;

/** Where the check reads: the file's nodes, and whether a leaf may be read. */
export interface RangeChecks {
  /** The codec of the file's root: only a dag-pb file has leaves apart from its root. */
  codec: CidCodec;
  /** A verified block (the file's inner nodes). */
  block: (cid: string) => Promise<Uint8Array>;
  /** `GatewayStorage.mayRead` (true for every leaf where the port has none). */
  mayRead: (cid: string) => Promise<boolean>;
}

/**
 * `open`, after the check of the leaves of `[start, end)` of file `cid`. For a `HEAD` (`head`),
 * the check alone and an empty body: call `rangedResponse` as for a `GET` then (only it works out
 * the range from the request), and Hono answers a `HEAD` with the `GET`'s headers, dropping the
 * body, so no read of the file is started for it.
 */
export function checkedOpener(
  cid: string,
  checks: RangeChecks,
  open: RangeOpener,
  head: boolean,
): RangeOpener {
  return async (start, end) => {
    if (checks.codec === DAG_PB_CODEC) {
      await assertRangeReadable(cid, start, end, checks.block, checks.mayRead);
    }
    return head ? ReadableStream.from<Uint8Array>([]) : await open(start, end);
  };
}
