/** Minimal `--key value` / `--flag` parsing with loud errors for unknown options. */
export interface OptionSpec {
  /** Option name without dashes. */
  name: string;
  /** 'flag' takes no value; 'list' may repeat (--set a=1 --set b=2). */
  kind: 'flag' | 'string' | 'number' | 'list';
  help: string;
  default?: string | number | boolean;
}

export type ParsedOptions = Record<string, string | number | boolean | string[]>;

export function parseOptions(
  argv: readonly string[],
  specs: readonly OptionSpec[],
  command: string,
  /** Receives non-option arguments; without it they are an error. */
  positional?: string[],
): ParsedOptions {
  const out: ParsedOptions = {};
  for (const s of specs) if (s.default !== undefined) out[s.name] = s.default;
  for (const s of specs) if (s.kind === 'list') out[s.name] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      if (positional === undefined) throw new Error(`retort ${command}: unexpected argument '${arg}'`);
      positional.push(arg);
      continue;
    }
    // Split at the first '=' only: `--set=epochs=1` is the option set with the value epochs=1
    // (String.split with a limit drops the rest, which silently truncated such values).
    const body = arg.slice(2);
    const eq = body.indexOf('=');
    const rawName = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    const spec = specs.find((s) => s.name === rawName);
    if (spec === undefined) {
      const known = specs.map((s) => `--${s.name}`).join(', ');
      throw new Error(`retort ${command}: unknown option --${rawName} (known: ${known})`);
    }
    if (spec.kind === 'flag') {
      if (inline !== undefined)
        throw new Error(`retort ${command}: --${spec.name} is a flag and takes no value (got '${arg}')`);
      out[spec.name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`retort ${command}: --${spec.name} needs a value`);
    if (spec.kind === 'list') {
      (out[spec.name] as string[]).push(value);
    } else if (spec.kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n))
        throw new Error(`retort ${command}: --${spec.name} expects a number, got '${value}'`);
      out[spec.name] = n;
    } else out[spec.name] = value;
  }
  return out;
}

export function helpText(command: string, summary: string, specs: readonly OptionSpec[]): string {
  const lines = [`retort ${command}: ${summary}`, '', 'Options:'];
  for (const s of specs) {
    const arg = s.kind === 'flag' ? '' : ` <${s.kind}>`;
    const def = s.default !== undefined && s.kind !== 'flag' ? ` (default ${s.default})` : '';
    lines.push(`  --${s.name}${arg}`.padEnd(28) + s.help + def);
  }
  return lines.join('\n');
}
