/** What every `retort <command>` module exports (apart from main.ts, so imports stay one-way). */
export interface Command {
  name: string;
  summary: string;
  run(argv: readonly string[]): Promise<void>;
}
