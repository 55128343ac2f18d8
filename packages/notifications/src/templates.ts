import Handlebars from 'handlebars'

/** Where a notification goes. `in_app` is Herald's own inbox per user (the seed's "system" notifications). */
export type Channel = 'email' | 'sms' | 'push' | 'in_app'
export const channels: readonly Channel[] = ['email', 'sms', 'push', 'in_app']

/** What a template author writes. One template is one name, channel and locale; each save is a new version. */
export interface TemplateInput {
  readonly name: string
  readonly channel: Channel
  /** BCP 47, e.g. `zh-CN`, `en`. */
  readonly locale: string
  /** Email subject, push title, in-app title. */
  readonly subject?: string
  readonly body: string
  /**
   * `html`: variables are HTML-escaped unless written `{{{triple}}}` (marked safe); `text`: nothing is escaped
   * (plain-text email, SMS, push). Default `text`, except email, which defaults to `html`.
   */
  readonly format?: 'html' | 'text'
  /** Data the template must render with: checked at save, so a template that needs more fails there, not at send. */
  readonly example?: Readonly<Record<string, unknown>>
}

export interface StoredTemplate extends Required<Omit<TemplateInput, 'example' | 'subject'>> {
  readonly subject: string | undefined
  readonly version: number
  readonly createdAt: number
}

/** Where templates live: in memory, SQLite or PostgreSQL. */
export interface TemplateStore {
  /** Stores the next version of this name, channel and locale and returns it. */
  save(template: Omit<StoredTemplate, 'version' | 'createdAt'>, now: number): Promise<StoredTemplate>
  /** The newest version, or the given one. */
  get(name: string, channel: Channel, locale: string, version?: number): Promise<StoredTemplate | undefined>
  list(): Promise<StoredTemplate[]>
}

export interface Rendered {
  readonly template: { readonly name: string; readonly locale: string; readonly version: number }
  readonly subject: string | undefined
  readonly body: string
  readonly format: 'html' | 'text'
}

/** A template could not be saved or rendered; `message` says which template and why. Retrying cannot help. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TemplateError'
  }
}

// A private Handlebars: helpers registered by others do not reach Herald's templates.
const handlebars = Handlebars.create()
// `strict`: a variable the data lacks is an error, never an empty string. Conditions on a missing variable
// (`{{#if coupon}}`) are allowed: that is how a template says a variable is optional.
const compileOptions = { strict: true, knownHelpersOnly: true } as const

function compile(source: string, format: 'html' | 'text'): HandlebarsTemplateDelegate {
  return handlebars.compile(source, { ...compileOptions, noEscape: format === 'text' })
}

function describe(t: { name: string; channel: Channel; locale: string; version?: number }): string {
  return `template "${t.name}" (${t.channel}, ${t.locale}${t.version === undefined ? '' : `, v${t.version}`})`
}

function explain(err: unknown): string {
  const message = (err as Error).message
  const missing = /^"([^"]+)" not defined in .* - (\d+):(\d+)$/.exec(message)
  if (missing !== null) return `needs variable "${missing[1]}" (line ${missing[2]}, column ${Number(missing[3]) + 1})`
  return message.split('\n')[0] ?? message
}

/** The locales to try for `locale`, most specific first: `zh-CN` → `zh-CN`, `zh`, then the fallback. */
export function localeChain(locale: string, fallback: string): string[] {
  const chain: string[] = []
  const parts = locale.split('-')
  for (let i = parts.length; i > 0; i--) chain.push(parts.slice(0, i).join('-'))
  if (!chain.includes(fallback)) chain.push(fallback)
  return chain
}

export interface Templates {
  /** Checks (syntax, helpers, and the example if given) and stores a new version. */
  save(input: TemplateInput): Promise<StoredTemplate>
  /** Renders the newest version for the locale, falling back along {@link localeChain}. */
  render(name: string, channel: Channel, locale: string, data: Readonly<Record<string, unknown>>): Promise<Rendered>
  list(): Promise<StoredTemplate[]>
}

export interface TemplatesOptions {
  readonly store: TemplateStore
  /** Used when neither the locale asked for nor its language has the template. Default `en`. */
  readonly fallbackLocale?: string
  readonly now?: () => number
  /** How long a looked-up newest version is trusted before the store is asked again. Default 5 s. */
  readonly refreshMs?: number
}

/** Templates with compiled versions cached: rendering a warm template reads no store. */
export function createTemplates(options: TemplatesOptions): Templates {
  const fallback = options.fallbackLocale ?? 'en'
  const now = options.now ?? Date.now
  const refreshMs = options.refreshMs ?? 5_000
  const compiled = new Map<string, { subject?: HandlebarsTemplateDelegate; body: HandlebarsTemplateDelegate }>()
  const newest = new Map<string, { template: StoredTemplate | undefined; at: number }>()

  function compiledOf(t: StoredTemplate) {
    const key = `${t.name}\u0000${t.channel}\u0000${t.locale}\u0000${t.version}`
    let entry = compiled.get(key)
    if (entry === undefined) {
      entry = {
        body: compile(t.body, t.format),
        ...(t.subject === undefined ? {} : { subject: compile(t.subject, 'text') }),
      }
      compiled.set(key, entry)
    }
    return entry
  }

  async function lookup(name: string, channel: Channel, locale: string): Promise<StoredTemplate | undefined> {
    const key = `${name}\u0000${channel}\u0000${locale}`
    const cached = newest.get(key)
    if (cached !== undefined && now() - cached.at < refreshMs) return cached.template
    const template = await options.store.get(name, channel, locale)
    newest.set(key, { template, at: now() })
    return template
  }

  return {
    async save(input) {
      const format = input.format ?? (input.channel === 'email' ? 'html' : 'text')
      const where = describe(input)
      if (input.name.trim() === '') throw new TemplateError('a template needs a name')
      if (!/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(input.locale))
        throw new TemplateError(`${where}: "${input.locale}" is not a locale (write e.g. zh-CN or en)`)
      let body: HandlebarsTemplateDelegate
      let subject: HandlebarsTemplateDelegate | undefined
      try {
        // Handlebars compiles lazily: precompile to surface syntax and helper errors now.
        handlebars.precompile(input.body, compileOptions)
        if (input.subject !== undefined) handlebars.precompile(input.subject, compileOptions)
        body = compile(input.body, format)
        subject = input.subject === undefined ? undefined : compile(input.subject, 'text')
      } catch (err) {
        throw new TemplateError(`${where} does not compile: ${explain(err)}`)
      }
      if (input.example !== undefined) {
        try {
          body(input.example)
          subject?.(input.example)
        } catch (err) {
          throw new TemplateError(`${where} does not render its example: ${explain(err)}`)
        }
      }
      const stored = await options.store.save(
        {
          name: input.name,
          channel: input.channel,
          locale: input.locale,
          subject: input.subject,
          body: input.body,
          format,
        },
        now(),
      )
      newest.delete(`${input.name}\u0000${input.channel}\u0000${input.locale}`)
      return stored
    },

    async render(name, channel, locale, data) {
      for (const candidate of localeChain(locale, fallback)) {
        const template = await lookup(name, channel, candidate)
        if (template === undefined) continue
        const { subject, body } = compiledOf(template)
        try {
          return {
            template: { name, locale: template.locale, version: template.version },
            subject: subject?.(data),
            body: body(data),
            format: template.format,
          }
        } catch (err) {
          throw new TemplateError(`${describe(template)} ${explain(err)}`)
        }
      }
      throw new TemplateError(
        `no template "${name}" for ${channel} in ${localeChain(locale, fallback).join(', ')}: save one first`,
      )
    },

    list: () => options.store.list(),
  }
}
