/** The books on sale: each chapter at its price, the whole book at a discount. */
export interface Book {
  readonly id: string
  readonly title: string
  readonly authorId: string
  readonly chapters: number
  readonly chapterFen: number
}

export const books: readonly Book[] = [
  { id: 'b-santi', title: '三体', authorId: 'author-liu', chapters: 12, chapterFen: 30 },
  { id: 'b-qiuzhi', title: '求知', authorId: 'author-liu', chapters: 8, chapterFen: 20 },
  { id: 'b-huozhe', title: '活着', authorId: 'author-yu', chapters: 10, chapterFen: 25 },
  { id: 'b-weicheng', title: '围城', authorId: 'author-qian', chapters: 9, chapterFen: 40 },
]

export const authors = new Set(books.map((b) => b.authorId))
/** A whole book costs its chapters less a fifth. */
export const bookFen = (book: Book) => Math.floor((book.chapters * book.chapterFen * 4) / 5)
export const vipDayFen = 10
