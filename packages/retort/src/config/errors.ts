/**
 * Turns zod issues into one message a person can act on: the file, the key path, what was expected,
 * and for unknown keys the valid ones at that place.
 */

import { z } from 'zod';
import { RetortError } from '../util/errors.js';

type AnySchema = z.ZodType;

/** The object schema reached by following `path` through objects, arrays, defaults and optionals. */
function schemaAt(schema: AnySchema, path: readonly PropertyKey[]): AnySchema | undefined {
  let s: AnySchema | undefined = schema;
  for (const key of path) {
    s = unwrap(s);
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, AnySchema>)[String(key)];
    else if (s instanceof z.ZodArray) s = s.element as AnySchema;
    else return undefined;
  }
  return s === undefined ? undefined : unwrap(s);
}

function unwrap(s: AnySchema | undefined): AnySchema | undefined {
  let cur = s;
  for (let i = 0; i < 8 && cur !== undefined; i++) {
    if (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional || cur instanceof z.ZodNullable) {
      cur = cur.unwrap() as AnySchema;
    } else break;
  }
  return cur;
}

function pathText(path: readonly PropertyKey[]): string {
  return path.length === 0
    ? '(top level)'
    : path
        .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
        .join('.')
        .replace(/\.\[/g, '[');
}

/** One readable line per issue. */
export function formatIssues(schema: AnySchema, error: z.ZodError, where: string): string {
  const lines = error.issues.map((iss) => {
    if (iss.code === 'unrecognized_keys') {
      const obj = schemaAt(schema, iss.path);
      const valid = obj instanceof z.ZodObject ? Object.keys(obj.shape).join(', ') : '?';
      const keys = iss.keys.map((k) => `'${k}'`).join(', ');
      return `unknown key ${keys} at ${pathText(iss.path)} (valid keys: ${valid})`;
    }
    return `${pathText(iss.path)}: ${iss.message}`;
  });
  return `${where}: ${lines.join('; ')}`;
}

/** Parses `value` with `schema` or throws one error naming `where` and every problem. */
export function parseOrThrow<S extends AnySchema>(schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new RetortError(formatIssues(schema, r.error, where));
  return r.data;
}
