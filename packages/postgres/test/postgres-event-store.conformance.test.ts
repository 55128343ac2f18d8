import { fileURLToPath } from 'node:url'
import { describeEventStore } from '@herald/testkit'
import { createPostgresEventStore } from '../src/index.js'
import { freshSchema, usePostgresServer, withClient } from './server.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))

const server = usePostgresServer()

describeEventStore(
  'postgres',
  async () => {
    const url = server().url
    const schema = freshSchema('events')
    return {
      open: () => createPostgresEventStore({ connectionString: url, schema }),
      worker: () => ({
        module: factoryModule,
        exportName: 'createPostgresEventStore',
        options: { connectionString: url, schema },
      }),
      cleanup: () => withClient(url, (c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).then(() => {}),
    }
  },
  { persistent: true },
)
