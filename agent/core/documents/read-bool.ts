// A YAML boolean, reported like the other typed reads when it is anything else.
import type { IssueSink } from '../model/issues.js';
import { describe } from './reader.js';

export function readBool(sink: IssueSink, value: unknown, path: string): boolean | undefined {
  if (typeof value !== 'boolean') {
    sink.add(path, `expected true or false, got ${describe(value)}`);
    return undefined;
  }
  return value;
}
