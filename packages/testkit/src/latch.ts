/** A gate handlers can wait on, opened once by the test. */
export interface Latch {
  readonly wait: Promise<void>
  open(): void
}

export function createLatch(): Latch {
  let open!: () => void
  const wait = new Promise<void>((resolve) => {
    open = resolve
  })
  return { wait, open }
}
