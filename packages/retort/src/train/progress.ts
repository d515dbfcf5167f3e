/**
 * Progress for long work: epoch, step, loss, img/s and ETA on one rewritten line when stderr is a
 * TTY; when it is not (CI, logs), quiet except one line per epoch from the trainer.
 */
export class Progress {
  private readonly tty: boolean;
  private last = 0;

  constructor(
    private readonly totalSteps: number,
    stream: NodeJS.WriteStream = process.stderr,
    private readonly out: NodeJS.WriteStream = stream,
  ) {
    this.tty = stream.isTTY === true && process.env['CI'] !== 'true';
  }

  /** Reports step `done` of `totalSteps` (whole run) with samples processed since `t0` (ms). */
  update(
    epoch: number,
    epochs: number,
    step: number,
    /** Steps per epoch; undefined while a stream's first epoch is being read. */
    steps: number | undefined,
    done: number,
    loss: number,
    imgPerSec: number,
  ): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 200 && step !== steps) return;
    this.last = now;
    const left = this.totalSteps - done;
    const secPerStep = done > 0 ? (now - this.start) / 1000 / done : 0;
    const line =
      `epoch ${epoch}/${epochs} step ${step}/${steps ?? '?'} loss ${loss.toFixed(4)} ` +
      `${imgPerSec.toFixed(0)} img/s ETA ${formatSeconds(left * secPerStep)}`;
    this.out.write(`\r${line.padEnd(90)}`);
  }

  private readonly start = Date.now();

  /** Ends the rewritten line (TTY only). */
  endLine(): void {
    if (this.tty) this.out.write('\n');
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
