/**
 * Open receipts ordered by when their challenge window closes, so a finalize pass touches only
 * the receipts that are due, not every receipt the ledger has ever held.
 *
 * A binary min-heap of `(pendingUntil, order)`: `order` (the receipt's arrival) breaks ties, so
 * receipts due at the same moment come out in the order they were recorded. Entries are not
 * removed when a receipt is challenged or settled; the caller checks what it takes out
 * (lazy deletion), and puts a receipt back when it is pending again.
 *
 * @module
 */

/** One queued receipt. */
export interface DueItem {
  /** Unix ms when its window closes. */
  pendingUntil: number;
  /** Arrival order, to break ties. */
  order: number;
  /** The receipt id. */
  receiptId: string;
}

/** Min-heap of receipts by `pendingUntil`, then arrival. */
export class DueQueue {
  readonly #heap: DueItem[] = [];

  /** Queued items (stale ones included until they are taken out). */
  get size(): number {
    return this.#heap.length;
  }

  /** Queue an item. */
  push(item: DueItem): void {
    const heap = this.#heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  /** Take out every item due at `now` (`pendingUntil <= now`), earliest first. */
  takeDue(now: number): DueItem[] {
    const due: DueItem[] = [];
    while (this.#heap.length > 0 && this.#heap[0].pendingUntil <= now) due.push(this.#pop());
    return due;
  }

  #pop(): DueItem {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1, right = left + 1;
        let least = i;
        if (left < heap.length && before(heap[left], heap[least])) least = left;
        if (right < heap.length && before(heap[right], heap[least])) least = right;
        if (least === i) break;
        [heap[i], heap[least]] = [heap[least], heap[i]];
        i = least;
      }
    }
    return top;
  }
}

function before(a: DueItem, b: DueItem): boolean {
  return a.pendingUntil < b.pendingUntil ||
    (a.pendingUntil === b.pendingUntil && a.order < b.order);
}
