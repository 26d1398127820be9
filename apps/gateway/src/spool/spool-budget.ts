import { SpoolFullError } from '../errors.ts';

/**
 * The spool's disk (and memory) budget: the upload bytes every request together may hold. An upload reserves its
 * declared length before reading (or each chunk as it comes, when the length is not declared); past the budget
 * it waits up to waitMs for others to finish, first come first served, then is refused (503 with Retry-After).
 */
export class SpoolBudget {
  readonly totalBytes: number;
  private readonly waitMs: number;
  private usedBytes = 0;
  private readonly waiting: { bytes: number; admit: () => void }[] = [];

  constructor(options: { totalBytes: number; waitMs: number }) {
    this.totalBytes = options.totalBytes;
    this.waitMs = options.waitMs;
  }

  get used(): number {
    return this.usedBytes;
  }

  /** Takes bytes from the budget, waiting briefly when it is spent; throws SpoolFullError if it stays spent. */
  async reserve(bytes: number): Promise<void> {
    if (bytes <= 0) return;
    if (this.waiting.length === 0 && this.usedBytes + bytes <= this.totalBytes) {
      this.usedBytes += bytes;
      return;
    }
    if (bytes > this.totalBytes) this.refuse();
    await new Promise<void>((resolve, reject) => {
      const entry = { bytes, admit: () => resolve() };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        try {
          this.refuse();
        } catch (err) {
          reject(err);
        }
        this.admitWaiting(); // a large waiter leaving may let smaller ones behind it in
      }, this.waitMs);
      entry.admit = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiting.push(entry);
    });
  }

  /** Gives bytes back (an upload finished or was refused) and admits waiters that now fit. */
  release(bytes: number): void {
    if (bytes <= 0) return;
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
    this.admitWaiting();
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting[0] as { bytes: number; admit: () => void };
      if (this.usedBytes + next.bytes > this.totalBytes) return;
      this.waiting.shift();
      this.usedBytes += next.bytes;
      next.admit();
    }
  }

  private refuse(): never {
    throw new SpoolFullError(this.totalBytes, Math.max(1, Math.ceil(this.waitMs / 1000)));
  }
}
