// Regular expressions Envoy compiles with RE2: the JavaScript syntax RE2 refuses, found before Envoy NACKs it.
//
// Seen with Envoy 1.40 (`envoy --mode validate`, a route `safe_regex`): JS compiles each of these, RE2 refuses
// them ("invalid perl operator: (?=", "invalid escape sequence: \u", "missing ]: [^]"), and Envoy NACKs the
// whole RouteConfiguration. RE2 has no lookaround and no backreferences by design (linear time).
// The other way round, RE2 accepts some syntax JS refuses (`(?i)`, `\-`); meshlet refuses those too, which
// is over-strict but never sends Envoy a pattern it cannot compile.

/** Why RE2 would refuse `pattern` although JavaScript compiles it; undefined when no JS-only syntax is found. */
export function re2SyntaxError(pattern: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (next === 'u') return 'RE2 has no \\u escape (write \\x{41} or the character itself)';
      if (next === 'c') return 'RE2 has no \\c control escape';
      if (!inClass && next === 'k' && pattern[i + 2] === '<') return 'RE2 has no backreferences (\\k<name>)';
      if (/[1-9]/.test(next)) return `RE2 has no backreferences (\\${next}; refused inside a class too)`;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      // `[]` and `[^]` are an empty / match-anything class in JS; RE2 reads `]` right after `[` or `[^` as a literal.
      const start = pattern[i + 1] === '^' ? i + 2 : i + 1;
      if (pattern[start] === ']' && pattern.indexOf(']', start + 1) === -1) return `RE2 reads "${pattern.slice(i, start + 1)}" as an unterminated class`;
      inClass = true;
      i = pattern[start] === ']' ? start : start - 1;
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const op = pattern.slice(i, i + 4);
      if (op.startsWith('(?=') || op.startsWith('(?!')) return `RE2 has no lookahead ("${op.slice(0, 3)}")`;
      if (op === '(?<=' || op === '(?<!') return `RE2 has no lookbehind ("${op}")`;
    }
  }
  return undefined;
}
