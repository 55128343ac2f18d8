/** Child entry: runs one side of one benchmark (after a short warm-up) and prints its measurement as JSON. */
import { benchCases } from './cases.js'

const [index, side] = process.argv.slice(2)
const benchCase = benchCases[Number(index)]
if (!benchCase || (side !== 'herald' && side !== 'raw')) throw new Error(`usage: run-case <index> herald|raw`)
const run = side === 'herald' ? benchCase.herald : benchCase.baseline
await run() // warm-up: JIT, page cache, native module load
const measurement = await run()
const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024)
process.stdout.write(`${JSON.stringify({ ...measurement, peakRssMb })}\n`)
