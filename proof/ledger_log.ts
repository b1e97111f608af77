/**
 * The ledger's log file, `ledger.log`: length-prefixed frames appended and `fsync`'d before an
 * append returns, read back as a stream from any offset (memory bounded by one read block and
 * one frame, however long the log).
 *
 * The file knows nothing of entries: {@link ChainVerifier} (`ledger_entry.ts`) judges what is in
 * the frames. A frame whose declared length runs past the end is reported in `tornBytes`, a
 * length no frame can have in `badLength`; neither is judged here: a flipped bit in a length
 * prefix mid-log reads the same as a crash mid-append, and only the bytes after it tell them
 * apart (`judgeTail`, `ledger_recovery.ts`).
 *
 * @module
 */
import { FRAME_HEADER_BYTES, MAX_ENTRY_BYTES } from "./ledger_entry.ts";
import { keepToOwner, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** File name of the log inside the ledger directory. */
export const LOG_FILE = "ledger.log";

/** Bytes read from disk at once when streaming frames. */
const READ_BLOCK_BYTES = 1 << 20;

/** One frame read from the log. */
export interface LogFrame {
  /** Byte offset of the frame's length prefix. */
  offset: number;
  /** Byte offset just past the frame. */
  end: number;
  /** The frame's payload (valid until the callback returns). */
  payload: Uint8Array;
}

/** How a read of frames ended. */
export interface LogReadEnd {
  /** Offset just past the last whole frame read. */
  end: number;
  /**
   * Bytes after `end` that do not make a whole frame (the frame at `end` runs past the end of
   * what was read), 0 if none: a torn tail, or a damaged length prefix.
   */
  tornBytes: number;
  /** Set when the frame at `end` declares an impossible length (corruption, not a torn tail). */
  badLength?: number;
}

/** The ledger's append-only log file. */
export class LedgerLog {
  readonly #file: Deno.FsFile;
  /** The file's path. */
  readonly path: string;
  #size: number;

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.#size = size;
  }

  /**
   * Open the log at `path`.
   * @param path The file.
   * @param options `write`: open for appending (created if missing); default read-only.
   */
  static async open(path: string, options: { write?: boolean } = {}): Promise<LedgerLog> {
    const write = options.write ?? false;
    const file = await Deno.open(path, {
      read: true,
      write,
      create: write,
      mode: OWNER_FILE_MODE,
    });
    // Only an open that writes changes the mode: `ledger verify` reads, beside the node or as
    // another user, and leaves the file as it found it.
    if (write) keepToOwner(path);
    try {
      return new LedgerLog(path, file, (await file.stat()).size);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** Bytes in the log (whole frames plus any torn tail not yet cut). */
  get size(): number {
    return this.#size;
  }

  /**
   * Stream the frames from `from` to `to` (default: the end as it is now), calling `onFrame` for
   * each in order; stops at the first frame that is torn or has an impossible length.
   */
  async readFrames(
    from: number,
    onFrame: (frame: LogFrame) => void | Promise<void>,
    to = this.#size,
  ): Promise<LogReadEnd> {
    let buffer = new Uint8Array(0);
    let bufferAt = from; // file offset of buffer[0]
    let readAt = from;
    let offset = from;
    for (;;) {
      const at = offset - bufferAt;
      if (at + FRAME_HEADER_BYTES <= buffer.length) {
        const length = new DataView(buffer.buffer, buffer.byteOffset + at).getUint32(0);
        if (length === 0 || length > MAX_ENTRY_BYTES) {
          return { end: offset, tornBytes: 0, badLength: length };
        }
        const frameEnd = at + FRAME_HEADER_BYTES + length;
        if (frameEnd <= buffer.length) {
          const payload = buffer.subarray(at + FRAME_HEADER_BYTES, frameEnd);
          const end = offset + FRAME_HEADER_BYTES + length;
          await onFrame({ offset, end, payload });
          offset = end;
          continue;
        }
      }
      if (readAt >= to) return { end: offset, tornBytes: to - offset };
      // Keep the unread part of the buffer and read the next block behind it.
      const want = Math.min(READ_BLOCK_BYTES, to - readAt);
      const kept = buffer.subarray(offset - bufferAt);
      const next = new Uint8Array(kept.length + want);
      next.set(kept);
      const got = await this.#readAt(readAt, next.subarray(kept.length));
      buffer = next.subarray(0, kept.length + got);
      bufferAt = offset;
      readAt += got;
      if (got === 0) return { end: offset, tornBytes: readAt - offset };
    }
  }

  /** The payload of the frame at `offset`, if a whole frame starts there. */
  async frameAt(offset: number): Promise<LogFrame | undefined> {
    if (offset < 0 || offset + FRAME_HEADER_BYTES > this.#size) return undefined;
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    if (await this.#readAt(offset, header) < FRAME_HEADER_BYTES) return undefined;
    const length = new DataView(header.buffer).getUint32(0);
    const end = offset + FRAME_HEADER_BYTES + length;
    if (length === 0 || length > MAX_ENTRY_BYTES || end > this.#size) return undefined;
    const payload = new Uint8Array(length);
    if (await this.#readAt(offset + FRAME_HEADER_BYTES, payload) < length) return undefined;
    return { offset, end, payload };
  }

  /** The bytes from `from` to `to` (clamped to the log's size): for small ranges. */
  async read(from: number, to: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(Math.max(0, Math.min(to, this.#size) - from));
    return bytes.subarray(0, await this.#readAt(from, bytes));
  }

  /** The bytes from `from` to the end, a block at a time (a copy in bounded memory). */
  async *chunks(from: number): AsyncGenerator<Uint8Array> {
    for (let at = from; at < this.#size;) {
      const block = await this.read(at, Math.min(this.#size, at + READ_BLOCK_BYTES));
      if (block.length === 0) return;
      yield block;
      at += block.length;
    }
  }

  /**
   * The offset just past the last byte other than zero at or after `from`, or `from` when every
   * byte from there to the end is zero (space a crash allocated but never wrote).
   */
  async nonZeroEnd(from: number): Promise<number> {
    for (let to = this.#size; to > from;) {
      const at = Math.max(from, to - READ_BLOCK_BYTES);
      const block = await this.read(at, to);
      for (let i = block.length - 1; i >= 0; i--) {
        if (block[i] !== 0) return at + i + 1;
      }
      to = at;
    }
    return from;
  }

  /** Append a frame at the end and `fsync` it: durable when this resolves. */
  async append(frame: Uint8Array): Promise<void> {
    await this.#file.seek(this.#size, Deno.SeekMode.Start);
    let written = 0;
    while (written < frame.length) written += await this.#file.write(frame.subarray(written));
    await this.#file.syncData();
    this.#size += frame.length;
  }

  /**
   * `fsync` the log: what was read of it is then on disk, not only in the page cache (an append
   * a killed process wrote but never synced reads back whole, and is kept).
   */
  async sync(): Promise<void> {
    await this.#file.syncData();
  }

  /** Cut the log to `length` bytes, durably (a torn tail, or what a repair sets aside). */
  async truncate(length: number): Promise<void> {
    await this.#file.truncate(length);
    await this.#file.syncData();
    this.#size = length;
  }

  /** Close the file. */
  close(): void {
    this.#file.close();
  }

  async #readAt(offset: number, into: Uint8Array): Promise<number> {
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let read = 0;
    while (read < into.length) {
      const n = await this.#file.read(into.subarray(read));
      if (n === null) break;
      read += n;
    }
    return read;
  }
}
