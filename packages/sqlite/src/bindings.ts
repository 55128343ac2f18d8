import { compileTopicPattern } from '@herald/core'
import type { Statements } from './statements.js'

/**
 * Which groups a topic routes to and each group's settings, cached and reloaded whenever any process changes a
 * binding or a group's settings.
 */
export interface BindingsCache {
  /** Groups bound to `topic`. Call inside the publishing transaction so the answer is current. */
  groupsFor(topic: string): readonly string[]
  patternsByGroup(): ReadonlyMap<string, readonly string[]>
  /** The group's per-key concurrency (1 unless its settings say otherwise). */
  keyConcurrency(group: string): number
}

export function createBindingsCache(statements: Statements): BindingsCache {
  let version = -1
  let patterns = new Map<string, string[]>()
  let matchers: { group: string; match: (topic: string) => boolean }[] = []
  let routes = new Map<string, readonly string[]>()
  let concurrency = new Map<string, number>()

  function refresh(): void {
    const current = statements.bindingsVersion.get()?.value ?? 0
    if (current === version) return
    version = current
    patterns = new Map()
    matchers = []
    routes = new Map()
    concurrency = new Map(statements.allGroupSettings.all().map((r) => [r.group_name, r.key_concurrency]))
    for (const row of statements.allBindings.all()) {
      const list = patterns.get(row.group_name) ?? []
      list.push(row.pattern)
      patterns.set(row.group_name, list)
      matchers.push({ group: row.group_name, match: compileTopicPattern(row.pattern) })
    }
  }

  return {
    groupsFor(topic) {
      refresh()
      let groups = routes.get(topic)
      if (groups === undefined) {
        groups = [...new Set(matchers.filter((m) => m.match(topic)).map((m) => m.group))]
        routes.set(topic, groups)
      }
      return groups
    },
    patternsByGroup() {
      refresh()
      return patterns
    },
    keyConcurrency(group) {
      refresh()
      return concurrency.get(group) ?? 1
    },
  }
}
