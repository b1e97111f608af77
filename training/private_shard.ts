/**
 * A trainer's shard in its own private storage tier: encrypted at rest under the node's owner
 * key (`storage/private_tier.ts`), held in this node's store only (`local`: not even its
 * ciphertext is replicated to storage peers), never served over HTTP (private files are not),
 * and read back from there for training. Only model deltas leave the node.
 *
 * The first start puts the shard it was dealt and records the file's CID beside the data
 * (`<dataDir>/training/shard.cbor`, with which shard of how many it is); later starts read the
 * shard back from the store by that CID. A node dealt another shard (other `--train-shard` or
 * corpus size) stores that one and forgets the record of the old.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import type { ActorRef } from "../actors/actor_ref.ts";
import { type StorageMessage, unwrapReply } from "../actors/storage_actor_messages.ts";
import type { PutFileResult } from "../storage/file_store.ts";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";
import { writeFileDurably } from "../proof/_durable_file.ts";
import type { TextShard } from "./brown_corpus.ts";
import { TrainingError } from "./training_error.ts";

/** Which shard a node was dealt: a change means another shard to store. */
export interface ShardDeal {
  /** Shard index. */
  shard: number;
  /** Shards in all. */
  shards: number;
  /** Documents of the corpus the shards were dealt from. */
  corpusDocs: number;
}

/** Where the stored shard's CID is recorded, under the data directory. */
const RECORD_PATH = ["training", "shard.cbor"] as const;
/** Format of the stored shard file. */
const SHARD_FILE_VERSION = 1;

const RecordSchema = z.object({
  cid: z.string().min(1),
  shard: z.number().int(),
  shards: z.number().int(),
  corpusDocs: z.number().int(),
});

const ShardFileSchema = z.object({
  v: z.literal(SHARD_FILE_VERSION),
  documents: z.array(z.object({ id: z.string(), bytes: z.instanceof(Uint8Array) })),
});

/** What {@link keepShardPrivate} did. */
export interface PrivateShard {
  /** The shard as read back from the store. */
  shard: TextShard;
  /** CID of its (encrypted) file. */
  cid: string;
  /** Whether it was stored now (first start, or another deal) rather than found. */
  stored: boolean;
}

/**
 * Keep `dealt` in the node's private storage tier (or find it there) and return it as read
 * back from the store.
 *
 * @param storage The node's StorageActor (it must have an owner key).
 * @param dataDir The node's data directory (the CID record lives under it).
 * @param dealt The shard this node was dealt, and which one it is.
 * @throws {TrainingError} `shard_unreadable` when a recorded shard cannot be read back.
 */
export async function keepShardPrivate(
  storage: ActorRef<StorageMessage>,
  dataDir: string,
  dealt: { shard: TextShard; deal: ShardDeal },
): Promise<PrivateShard> {
  const recordPath = join(dataDir, ...RECORD_PATH);
  const record = await readRecord(recordPath);
  const { deal } = dealt;
  if (
    record !== undefined && record.shard === deal.shard && record.shards === deal.shards &&
    record.corpusDocs === deal.corpusDocs
  ) {
    return { shard: await readShard(storage, record.cid), cid: record.cid, stored: false };
  }
  const bytes = encodeCanonical({
    v: SHARD_FILE_VERSION,
    documents: dealt.shard.documents.map((d) => ({ id: d.id, bytes: d.bytes })),
  });
  const put = unwrapReply<PutFileResult>(
    await storage.ask({
      type: "put_bytes",
      bytes,
      private: true,
      local: true,
    }),
  );
  await makeOwnerDir(join(dataDir, RECORD_PATH[0]));
  // Durably (review s75 F3): a record lost to a power cut only costs putting the shard again,
  // but the write is one small file at the first start, so it is made crash-proof like the rest.
  await writeFileDurably(recordPath, encodeCanonical({ cid: put.cid, ...deal }));
  return { shard: await readShard(storage, put.cid), cid: put.cid, stored: true };
}

async function readRecord(path: string): Promise<z.infer<typeof RecordSchema> | undefined> {
  try {
    return RecordSchema.parse(decodeCbor(await Deno.readFile(path)));
  } catch {
    return undefined; // none yet, or damaged: store the shard (again)
  }
}

async function readShard(storage: ActorRef<StorageMessage>, cid: string): Promise<TextShard> {
  try {
    const bytes = unwrapReply<Uint8Array>(
      await storage.ask({ type: "get_bytes", cid, local: true }),
    );
    const file = ShardFileSchema.parse(decodeCbor(bytes));
    return { documents: file.documents };
  } catch (error) {
    throw new TrainingError(
      "shard_unreadable",
      `the private shard ${cid} cannot be read back: ${(error as Error).message}`,
    );
  }
}
