import type { Output } from './output.js'

/** Reports a long command's progress on stderr: count, rate and time remaining, at most twice a second. */
export interface Progress {
  /** `done` items so far. */
  update(done: number): void
  /** The last line, whatever the time since the previous one. */
  finish(done: number): void
}

export function createProgress(
  output: Output,
  label: string,
  total: number,
  now: () => number = () => performance.now(),
): Progress {
  const started = now()
  let printedAt = Number.NEGATIVE_INFINITY
  const print = (done: number) => {
    const seconds = (now() - started) / 1_000
    const rate = seconds > 0 ? done / seconds : 0
    const left = rate > 0 ? Math.max(0, total - done) / rate : Number.NaN
    const remaining = done >= total ? 'done' : Number.isFinite(left) ? `~${Math.ceil(left)} s left` : 'starting'
    output.err(`${label} ${progressBar(done, total)} ${Math.round(rate)}/s, ${remaining}`)
  }
  return {
    update(done) {
      const at = now()
      if (at - printedAt < 500) return
      printedAt = at
      print(done)
    },
    finish: print,
  }
}

export function progressBar(done: number, total: number, width = 30): string {
  const fraction = total === 0 ? 1 : Math.min(1, done / total)
  const filled = Math.round(fraction * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${Math.round(fraction * 100)}%`
}
