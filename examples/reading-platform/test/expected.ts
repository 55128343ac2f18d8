// 24 readers: every sixth signs up through the version-1 client (upcast on the way in); each tops up 100–550 fen
// and buys chapters of one book in order (every fifth the whole book) until the wallet says no; every fourth
// buys a VIP day, which expires; every third's comment gets a reply. Royalties are 60%, settled for the month.
// Every purchase earns its author one royalty and every royalty is settled (revenue = settled); each event a user
// should hear of gives one in-app notification; the statistics rebuilt by replay equal the live projection.
export const expectedSummary = {
  readers: 24,
  registered: 27,
  registered_v1: 4,
  deposits: 24,
  purchases: { chapters: 93, books: 3, refused: 12 },
  sales_fen: 3311,
  royalty_percent: 60,
  revenue_fen: 1985,
  settled_fen: 1985,
  settlements: 3,
  withdrawals: 3,
  vip: { activated: 6, expired: 6 },
  chapters_read: 102,
  achievements: 22,
  published: 1,
  notifications: { welcome: 27, royalty: 96, achievement: 22, 'vip-expired': 6, reply: 8, settlement: 3 },
  notifications_read: 26,
  lost: 0,
  statistics_rebuilt: true,
}
