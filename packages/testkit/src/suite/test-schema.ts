import type { StandardSchemaV1 } from '@herald/core'

type FieldType = 'string' | 'number'

/** A minimal Standard Schema for the suite (no schema library needed): an object with typed required fields. */
export function objectSchema<T extends Record<string, FieldType>>(
  fields: T,
): StandardSchemaV1<{ [K in keyof T]: T[K] extends 'string' ? string : number }> {
  return {
    '~standard': {
      version: 1,
      vendor: 'herald-testkit',
      validate(value) {
        if (typeof value !== 'object' || value === null) return { issues: [{ message: 'expected an object' }] }
        const record = value as Record<string, unknown>
        const issues = Object.entries(fields)
          .filter(([key, type]) => typeof record[key] !== type)
          .map(([key, type]) => ({ message: `expected ${type}`, path: [key] }))
        return issues.length > 0 ? { issues } : { value: value as never }
      },
    },
  }
}
