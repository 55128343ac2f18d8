import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import { AchievementUnlocked, ChapterRead } from '../contracts.js'

export const readingSchema = `CREATE TABLE IF NOT EXISTS reading (user_id TEXT NOT NULL, book_id TEXT NOT NULL,
  chapter INTEGER NOT NULL, PRIMARY KEY (user_id, book_id, chapter));
CREATE TABLE IF NOT EXISTS achievements (user_id TEXT NOT NULL, achievement TEXT NOT NULL,
  PRIMARY KEY (user_id, achievement))`

/** What a reader earns, by distinct chapters read and distinct books opened. */
export const achievementRules: readonly {
  readonly name: string
  readonly chapters?: number
  readonly books?: number
}[] = [
  { name: 'first-chapter', chapters: 1 },
  { name: 'ten-chapters', chapters: 10 },
  { name: 'three-books', books: 3 },
]

/**
 * Reading rewards: each chapter read (an in-process event on the hybrid bus) counts once per reader and chapter,
 * and an achievement is unlocked, and announced, once.
 */
export function registerReadingService(bus: Bus, state: ServiceState): void {
  const { db } = state
  const counts = db.prepare<[string], { chapters: number; books: number }>(
    'SELECT count(*) AS chapters, count(DISTINCT book_id) AS books FROM reading WHERE user_id = ?',
  )
  const has = db.prepare<[string, string]>('SELECT 1 FROM achievements WHERE user_id = ? AND achievement = ?')
  const read = db.prepare<[string, string, number]>(
    'SELECT 1 FROM reading WHERE user_id = ? AND book_id = ? AND chapter = ?',
  )
  const opened = db.prepare<[string, string]>('SELECT 1 FROM reading WHERE user_id = ? AND book_id = ?')
  const insert = db.prepare<[string, string, number]>('INSERT OR IGNORE INTO reading VALUES (?, ?, ?)')
  const award = db.prepare<[string, string]>('INSERT INTO achievements VALUES (?, ?)')
  bus.group('reading-service.rewards').on(ChapterRead, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { userId, bookId, chapter } = message.data
      const before = counts.get(userId) ?? { chapters: 0, books: 0 }
      const after = {
        chapters: before.chapters + (read.get(userId, bookId, chapter) === undefined ? 1 : 0),
        books: before.books + (opened.get(userId, bookId) === undefined ? 1 : 0),
      }
      const unlocked = achievementRules
        .filter((r) => (r.chapters ?? 0) <= after.chapters && (r.books ?? 0) <= after.books)
        .map((r) => r.name)
        .filter((name) => has.get(userId, name) === undefined)
      return {
        write: () => {
          insert.run(userId, bookId, chapter)
          for (const name of unlocked) award.run(userId, name)
        },
        send: unlocked.map((achievement) => context.prepare(AchievementUnlocked, { userId, achievement })),
      }
    }),
  )
}
