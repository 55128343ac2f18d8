/**
 * Child entry (`HERALD_BENCH_LEVEL=bus|transport`): runs one side of one benchmark after a warm-up, three times, and prints the median run (by rate)
 * as JSON. Disk-bound figures vary from run to run on a shared machine; the median damps that.
 */
import { benchCases } from './cases.js'
import type { Measurement } from './measure.js'

// The level is read when measure.js loads: `transport` is Herald's side at the transport level (main.ts sets it).
const [index, side] = process.argv.slice(2)
const benchCase = benchCases[Number(index)]
if (!benchCase || (side !== 'herald' && side !== 'raw')) throw new Error(`usage: run-case <index> herald|raw`)
const run = side === 'herald' ? benchCase.herald : benchCase.baseline
let measurement: Measurement
if (benchCase.once) measurement = await run()
else {
  await run() // warm-up: JIT, page cache, native module load
  const runs = [await run(), await run(), await run()].sort((a, b) => a.perSecond - b.perSecond)
  measurement = runs[1]!
}
const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024)
process.stdout.write(`${JSON.stringify({ ...measurement, peakRssMb })}\n`)
