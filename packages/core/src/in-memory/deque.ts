/** A FIFO queue with O(1) push, unshift and take from the front (an array with a moving head). */
export interface Deque<T> {
  readonly length: number
  push(item: T): void
  unshift(item: T): void
  /** Removes and returns up to `max` items from the front. */
  take(max: number): T[]
  /** Removes and returns the front item. */
  shift(): T | undefined
  /** The front item, left in place. */
  peek(): T | undefined
}

export function createDeque<T>(): Deque<T> {
  let items: (T | undefined)[] = []
  let head = 0
  return {
    get length() {
      return items.length - head
    },
    push(item) {
      items.push(item)
    },
    unshift(item) {
      if (head > 0) items[--head] = item
      else items.unshift(item)
    },
    shift() {
      if (head >= items.length) return undefined
      const item = items[head]
      items[head++] = undefined
      if (head > 1024 && head * 2 > items.length) {
        items = items.slice(head)
        head = 0
      }
      return item
    },
    peek() {
      return items[head]
    },
    take(max) {
      const end = Math.min(items.length, head + max)
      const taken = items.slice(head, end) as T[]
      for (let i = head; i < end; i++) items[i] = undefined
      head = end
      // Compact once the consumed prefix dominates, so memory follows the live length.
      if (head > 1024 && head * 2 > items.length) {
        items = items.slice(head)
        head = 0
      }
      return taken
    },
  }
}
