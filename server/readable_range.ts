/**
 * The opener a file read (`/v1/files/{cid}`, `/ipfs/{cid}`) gives `rangedResponse`, with the leaves
 * of the range it is asked for checked first (`storage/unixfs.ts` `assertRangeReadable`): a file
 * whose leaf is lost (from disk, set aside in `quarantine/`, never fetched) is answered as a missing
 * block is, `404 chunk_not_found`, and not with a `200`, its length, then a cut body (review s76
 * F3). A `HEAD` is checked the same way, so it promises no `200` its `GET` cannot keep.
 *
 * What it cannot see: on a node with storage peers a leaf not held here is taken as readable (the
 * peers are not asked, a round trip per leaf), so a leaf that no peer holds still gets a `200` and a
 * cut body; there the check stops after one call. A range of more than `MAX_RANGE_STEPS` leaves is
 * not checked either (see `assertRangeReadable`).
 *
 * @module
 */
import { type CidCodec, DAG_PB_CODEC } from "../protocols/cid.ts";
import { assertRangeReadable, type LeafChecker } from "../storage/unixfs.ts";

/** Opens bytes `[start, end)` of a file, as `rangedResponse` calls it. */
export type RangeOpener = (start: number, end: number) => Promise<ReadableStream<Uint8Array>>;

/** Where the check reads: the file's nodes, and whether a leaf may be read. */
export interface RangeChecks {
  /** The codec of the file's root: only a dag-pb file has leaves apart from its root. */
  codec: CidCodec;
  /** A verified block (the file's inner nodes). */
  block: (cid: string) => Promise<Uint8Array>;
  /** `GatewayStorage.leavesReadable`; without it, every leaf is taken as readable. */
  leavesReadable?: LeafChecker;
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
    if (checks.codec === DAG_PB_CODEC && checks.leavesReadable !== undefined) {
      await assertRangeReadable(cid, start, end, checks.block, checks.leavesReadable);
    }
    return head ? ReadableStream.from<Uint8Array>([]) : await open(start, end);
  };
}
