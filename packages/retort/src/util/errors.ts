/**
 * Retort's own errors: raised on purpose about something the user gave (a file, a config key, a
 * row of data, a run folder), with a message that names it. Anything else that escapes is a bug.
 * The fuzz harness (bench/fuzz.ts) counts exactly that: a reader or loader may fail on a broken
 * file, but only with a RetortError.
 */
export class RetortError extends Error {
  /** The file the error is about, when there is one. */
  readonly file: string | undefined;

  constructor(message: string, opts: { file?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RetortError';
    this.file = opts.file;
  }
}

/** The message of anything thrown (for wrapping a library's error into a RetortError). */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ?? e.message;
  return String(e);
}
