/** Text that is already HTML (built by `html`), so it is not escaped again. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => escapes[c] as string)
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.value
  if (Array.isArray(value)) return value.map(render).join('')
  if (value === undefined || value === null || value === false) return ''
  return escapeHtml(String(value))
}

/**
 * The only way pages are built: every interpolated value is escaped unless it is itself `html`, so a payload,
 * header or error message can never become markup.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? ''
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '')
  })
  return new SafeHtml(out)
}

/** Trusted markup written by Herald itself (a stylesheet, a script literal): never call it with outside text. */
export function trusted(markup: string): SafeHtml {
  return new SafeHtml(markup)
}

/**
 * An id as an operator wants it in a table: its first and last characters, the whole id on hover, and a button
 * that copies it (the console's script does the copying).
 */
export function shortId(id: string): SafeHtml {
  const short = id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id
  return html`<code class="id" title="${id}">${short}</code><button type="button" class="copy" data-copy="${id}" title="copy the whole id">copy</button>`
}

/** A time the console's script shows in the reader's time zone and as how long ago; ISO 8601 without the script. */
export function timeTag(ms: number): SafeHtml {
  const iso = new Date(ms).toISOString()
  return html`<time datetime="${iso}" title="${iso}">${iso}</time>`
}

/** A payload pretty-printed when it is JSON (as text either way), in a block that folds. */
export function payloadBlock(text: string, open = true): SafeHtml {
  let shown = text
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2)
  } catch {}
  return html`<details ${open ? trusted('open') : ''}><summary>payload (${text.length} characters)</summary><pre id="payload">${shown}</pre></details>`
}
