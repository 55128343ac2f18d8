/** Replaces the password of every URL in `text` (`scheme://user:secret@host` → `scheme://user:***@host`). */
export function redactSecrets(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s/]+@/gi, '$1:***@')
}

/** Log keys whose values never reach a log line (pino `redact` paths). */
export const redactedLogPaths = [
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
]
