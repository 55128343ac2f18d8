/** One frame kept for resume. */
export interface Kept {
  readonly id: string
  readonly correlationId: string
  readonly frame: string
}

/**
 * The last `perUser` frames of each user, for the last `maxUsers` users who received one: bounded whatever the
 * traffic. A user's frames are kept even while they are not connected here, so a client that reconnects to any
 * gateway instance can resume.
 */
export class UserHistory {
  private readonly users = new Map<string, Kept[]>()

  constructor(
    private readonly perUser: number,
    private readonly maxUsers: number,
  ) {}

  /** Keeps a frame; false if this user already has a frame with this id (a redelivered event). */
  add(userId: string, kept: Kept): boolean {
    let frames = this.users.get(userId)
    if (frames === undefined) {
      frames = []
      if (this.users.size >= this.maxUsers) {
        const oldest = this.users.keys().next().value
        if (oldest !== undefined) this.users.delete(oldest)
      }
    } else {
      if (frames.some((f) => f.id === kept.id)) return false
      this.users.delete(userId) // re-inserted below: the map's order is least recently written first
    }
    frames.push(kept)
    if (frames.length > this.perUser) frames.shift()
    this.users.set(userId, frames)
    return true
  }

  /** The kept frame `id` of this user, if they received it and it is still kept. */
  find(userId: string, id: string): Kept | undefined {
    return this.users.get(userId)?.find((f) => f.id === id)
  }

  /**
   * The frames after `lastId`. `gap` is true when `lastId` is no longer kept (too old, or never seen here): the
   * client then gets all that is kept and should reload its state.
   */
  since(userId: string, lastId: string | undefined): { readonly frames: readonly Kept[]; readonly gap: boolean } {
    const frames = this.users.get(userId) ?? []
    if (lastId === undefined) return { frames: [], gap: false }
    const at = frames.findIndex((f) => f.id === lastId)
    if (at === -1) return { frames, gap: true }
    return { frames: frames.slice(at + 1), gap: false }
  }
}
