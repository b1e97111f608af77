/**
 * The KV cache of a running batch (`_batch_decoder.ts`): one tensor per layer and kind,
 * `[rows, heads, slots, headDim]`, where row `i` belongs to the batch's `i`-th member and holds
 * its valid positions right-aligned at the batch's `width` (its left padding masked out).
 *
 * **Fixed-cache graphs** (Veriflow's built-in models) keep the batch in one buffer that outlives
 * its members: it has room for more rows than the batch uses and more slots than `width`, and a
 * step writes the new positions into it in place. A change of membership then copies one row,
 * not the batch: a member leaving has the last row moved into its place; a newcomer is copied
 * into the next free row. Nothing is allocated unless the buffer runs out of rows or slots: a
 * step (or a join) that would pass its last slot first moves every row left by the padding they
 * all share (rows of sequences that left make room this way), and only when there is none grows
 * the rows to the next capacity (`cacheCapacity`: 64 slots more, past 64). Memory is allocated
 * with room for the next power of two slots, so such growth moves the rows within it: the
 * step's tensors cover only the capacity (a step reads every slot it is given), the memory stays
 * allocated ahead. The buffer stays when the batch empties, so the next batch starts
 * without allocating; at most `maxBatch` rows of the longest batch yet. Every slot outside a row's
 * positions is zeroed when the row changes hands or moves, as in a fresh cache: a sequence never
 * sees what another left behind (masked, but 0 × Inf is not 0).
 *
 * Why it matters: a batch rebuilt by copy allocates its whole cache again (on `small`, 8 rows at
 * 512 slots are 100 MB), and on a VM where a fresh page costs ~15 µs such an allocation took
 * 200–300 ms; the batch's streams all waited for it at every join and every end of a generation.
 *
 * **Concat-convention graphs** (a Hugging Face export) hand back a new cache every step, exactly
 * `width` slots wide; there each change of membership copies the batch into a new cache, as such
 * a graph requires.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import {
  cacheCapacity,
  copySlots,
  type DecoderSession,
  type PastCache,
} from "./_decoder_session.ts";

/** A running batch's cache (see the module doc). */
export class BatchCache {
  #decoder: DecoderSession;
  #maxRows: number;
  /**
   * Fixed: the memory, one array per cache input, laid out `[#rowRoom, heads, #slots, headDim]`
   * in its first elements. Concat: unused.
   */
  #pool: Record<string, Float32Array> | null = null;
  #rowRoom = 0;
  #slots = 0;
  /** Concat: the cache, exactly `[rows, heads, width, headDim]`. */
  #concat: PastCache | null = null;
  /** Each used row's valid positions (its sequence's length), by row. */
  #lengths: number[] = [];
  #width = 0;
  /** Times memory was allocated for the cache (fixed: grown; concat: every change). */
  reallocations = 0;

  /**
   * @param decoder The session the batch runs on.
   * @param maxRows Most rows the batch ever has.
   */
  constructor(decoder: DecoderSession, maxRows: number) {
    this.#decoder = decoder;
    this.#maxRows = maxRows;
  }

  /** Rows in use. */
  get rows(): number {
    return this.#lengths.length;
  }

  /** Slots every row's positions are right-aligned at. */
  get width(): number {
    return this.#width;
  }

  /** Valid positions of row `row`. */
  length(row: number): number {
    return this.#lengths[row];
  }

  /** The cache to feed a step over every row in use: `[rows, heads, slots, headDim]`. */
  feed(): PastCache {
    return this.#decoder.fixedCache ? this.#view(this.rows, this.#slots) : this.#concat!;
  }

  /**
   * Make room for a step of `n` new tokens on every row: afterwards `width + n` slots fit.
   * A fixed cache moves its rows left by their shared padding when that is enough, else takes
   * the next capacity (`cacheCapacity`); a concat cache has nothing to do (the step widens it).
   */
  reserve(n: number): void {
    if (!this.#decoder.fixedCache || this.#width + n <= this.#slots) return;
    const padding = this.#width - Math.max(...this.#lengths);
    const needed = this.#width - padding + n;
    this.#relayout(
      this.#rowRoom,
      needed <= this.#slots ? this.#slots : cacheCapacity(needed),
      -padding,
    );
  }

  /**
   * A step of `n` tokens ran on every row: each holds `n` more positions. `present` is the step's
   * cache: a concat cache's new one (a fixed cache's was written in place).
   */
  stepped(n: number, present: PastCache): void {
    if (!this.#decoder.fixedCache) this.#concat = present;
    this.#width += n;
    for (let i = 0; i < this.#lengths.length; i++) this.#lengths[i] += n;
  }

  /**
   * Copy a sequence's own cache (one row, its `length` positions from slot 0) into the next free
   * row; returns that row.
   */
  add(cache: PastCache, length: number): number {
    const row = this.rows;
    if (!this.#decoder.fixedCache) {
      return this.#rebuild([...this.#lengths.keys()], { cache, length });
    }
    if (row === 0) {
      // A new batch: as few slots as its first member needs (a step's cost grows with them).
      this.#width = length;
      this.#relayout(Math.max(1, this.#rowRoom), cacheCapacity(length + 1), 0);
    } else {
      // Widened to the newcomer when the next step still fits; else first without the rows'
      // shared padding, as `reserve` does: the padding left by members that were longer must not
      // grow the slots, or a batch that never empties (someone joins as its slots fill) would
      // grow them at each fill, without bound, every step reading them all.
      let width = Math.max(this.#width, length);
      if (width + 1 > this.#slots) width = Math.max(length, ...this.#lengths);
      const rowRoom = row < this.#rowRoom
        ? this.#rowRoom
        : Math.min(this.#maxRows, Math.max(2 * this.#rowRoom, row + 1));
      const slots = Math.max(this.#slots, cacheCapacity(width + 1));
      if (width !== this.#width || rowRoom !== this.#rowRoom || slots !== this.#slots) {
        this.#relayout(rowRoom, slots, width - this.#width);
      }
    }
    const into = this.#view(this.#rowRoom, this.#slots);
    copySlots(this.#decoder, cache, 0, 0, into, row, this.#width - length, length);
    this.#lengths.push(length);
    this.#zeroOutside(row);
    return row;
  }

  /**
   * Take row `row` out of the batch: with `keep`, its positions are first copied into a cache of
   * its own (returned; else null). The last row moves into its place: `moved` is the row it came
   * from (= `rows` after the call), or -1 when `row` was the last.
   */
  remove(row: number, keep: boolean): { own: PastCache | null; moved: number } {
    const length = this.#lengths[row];
    const all = this.#decoder.fixedCache ? this.#view(this.#rowRoom, this.#slots) : this.#concat!;
    let own: PastCache | null = null;
    if (keep) {
      own = this.#decoder.allocatePast(1, length);
      copySlots(this.#decoder, all, row, this.#width - length, own, 0, 0, length);
    }
    const last = this.rows - 1;
    const moved = row === last ? -1 : last;
    if (!this.#decoder.fixedCache) {
      const rest = [...this.#lengths.keys()].filter((r) => r !== row);
      if (moved >= 0) rest.splice(row, 0, rest.pop()!); // the last row takes its place
      if (rest.length === 0) this.clear();
      else this.#rebuild(rest);
      return { own, moved };
    }
    if (moved >= 0) {
      const length = this.#lengths[last];
      const from = this.#width - length;
      copySlots(this.#decoder, all, last, from, all, row, from, length);
      this.#lengths[row] = length;
      this.#zeroOutside(row);
    }
    this.#lengths.pop();
    if (this.rows === 0) this.#width = 0;
    return { own, moved };
  }

  /** No rows (a fixed cache's memory is kept for the next batch). */
  clear(): void {
    this.#lengths = [];
    this.#width = 0;
    this.#concat = null;
  }

  /** No rows and no memory (its contents are not known to be sound). */
  drop(): void {
    this.clear();
    this.#pool = null;
    this.#rowRoom = 0;
    this.#slots = 0;
  }

  /** The pool's first `rows` rows as tensors of `slots` slots. */
  #view(rows: number, slots: number): PastCache {
    const { numKeyValueHeads: heads, headDim } = this.#decoder.shape;
    const size = rows * heads * slots * headDim;
    const view: PastCache = {};
    for (const [name, data] of Object.entries(this.#pool!)) {
      view[name] = new ort.Tensor("float32", data.subarray(0, size), [rows, heads, slots, headDim]);
    }
    return view;
  }

  /**
   * Lay the pool out as `rowRoom` rows of `slots` slots, every used row's positions moved `by`
   * slots (left when negative) on the way: in place when the pool is large enough, else into a
   * new pool with room for the next power of two slots (the capacities up to it then grow in
   * place).
   */
  #relayout(rowRoom: number, slots: number, by: number): void {
    const { numKeyValueHeads: heads, headDim } = this.#decoder.shape;
    const size = rowRoom * heads * slots * headDim;
    const old = this.#pool;
    const inPlace = old !== null && old[this.#decoder.pastNames[0]].length >= size;
    const pool = inPlace ? old : {} as Record<string, Float32Array>;
    if (!inPlace) {
      const room = rowRoom * heads * 2 ** Math.ceil(Math.log2(slots)) * headDim;
      for (const name of this.#decoder.pastNames) pool[name] = new Float32Array(room);
      this.reallocations++;
    }
    if (old !== null) {
      // Each (row, head) block's positions move from stride #slots to `slots`. In place, blocks
      // are moved in the order that never overwrites one not moved yet: first to last when the
      // stride shrinks (a block only moves towards the start), last to first when it grows.
      const blocks = this.rows * heads;
      const up = slots > this.#slots;
      for (const name of this.#decoder.pastNames) {
        const from = old[name];
        const to = pool[name];
        for (let k = 0; k < blocks; k++) {
          const b = up ? blocks - 1 - k : k;
          const length = this.#lengths[Math.floor(b / heads)];
          const src = (b * this.#slots + this.#width - length) * headDim;
          const dst = (b * slots + this.#width + by - length) * headDim;
          if (inPlace) to.copyWithin(dst, src, src + length * headDim);
          else to.set(from.subarray(src, src + length * headDim), dst);
        }
      }
    }
    this.#pool = pool;
    this.#rowRoom = rowRoom;
    this.#slots = slots;
    this.#width += by;
    // Moved in place, a block leaves its old positions behind, some now in another row's slots.
    if (inPlace) { for (let row = 0; row < this.rows; row++) this.#zeroOutside(row); }
  }

  /**
   * Zero row `row`'s slots outside its positions. A masked slot's weight is exactly 0, but 0 × Inf
   * or NaN is not 0: a sequence's cache must never hold what another sequence left behind (a
   * prompt that made the model overflow would otherwise spoil the next sequence in that row).
   */
  #zeroOutside(row: number): void {
    const { numKeyValueHeads: heads, headDim } = this.#decoder.shape;
    const length = this.#lengths[row];
    const from = (this.#width - length) * headDim;
    const to = this.#width * headDim;
    const stride = this.#slots * headDim;
    for (const data of Object.values(this.#pool!)) {
      for (let h = 0; h < heads; h++) {
        const base = (row * heads + h) * stride;
        data.fill(0, base, base + from);
        data.fill(0, base + to, base + stride);
      }
    }
  }

  /**
   * Concat convention: a new cache of the rows `keep` (in that order) then `extra`,
   * right-aligned at the longest. Returns `extra`'s row (or -1).
   */
  #rebuild(keep: number[], extra?: { cache: PastCache; length: number }): number {
    const lengths = keep.map((r) => this.#lengths[r]);
    if (extra) lengths.push(extra.length);
    const width = Math.max(...lengths);
    const fresh = this.#decoder.allocatePast(lengths.length, width);
    keep.forEach((r, i) => {
      const length = this.#lengths[r];
      copySlots(
        this.#decoder,
        this.#concat!,
        r,
        this.#width - length,
        fresh,
        i,
        width - length,
        length,
      );
    });
    if (extra) {
      copySlots(
        this.#decoder,
        extra.cache,
        0,
        0,
        fresh,
        keep.length,
        width - extra.length,
        extra.length,
      );
    }
    this.#concat = fresh;
    this.#lengths = lengths;
    this.#width = width;
    this.reallocations++;
    return extra ? keep.length : -1;
  }
}
