// Regular expressions Envoy compiles with RE2, checked with RE2 itself before Envoy would NACK them.
//
// Seen with Envoy 1.40 (`envoy --mode validate`, a route `safe_regex`): JS compiles lookaround, backreferences,
// `\u`, `\c` and `[^]`, RE2 refuses them ("invalid perl operator: (?=", "invalid escape sequence: \u",
// "missing ]: [^]"), and Envoy NACKs the whole RouteConfiguration; RE2 accepts `(?i)` and `\-`, which JS
// refuses. So the pattern is compiled by RE2 (re2-wasm, the build @grpc/grpc-js-xds matches routes with).
// re2-wasm's wrapper rewrites JS's `\u` and `\c` escapes before compiling; Envoy's RE2 does not: refused here.
import { createRequire } from 'node:module';

type Re2Ctor = new (pattern: string, flags: string) => unknown;
let re2: Re2Ctor | undefined;

// Loaded on the first regex (about 12 MiB of WebAssembly): most meshes have none.
function loadRe2(): Re2Ctor {
  re2 ??= (createRequire(import.meta.url)('re2-wasm') as { RE2: Re2Ctor }).RE2;
  return re2;
}

/** Why Envoy's RE2 refuses `pattern`; undefined when it compiles. */
export function re2SyntaxError(pattern: string): string | undefined {
  const escape = jsOnlyEscape(pattern);
  if (escape) return escape;
  try {
    new (loadRe2())(pattern, 'u');
    return undefined;
  } catch (err) {
    // "Invalid regular expression: /(?=x)/u: invalid perl operator: (?=" → RE2's own words.
    const msg = (err as Error).message;
    return `RE2: ${msg.slice(msg.lastIndexOf('/u: ') >= 0 ? msg.lastIndexOf('/u: ') + 4 : 0)}`;
  }
}

function jsOnlyEscape(pattern: string): string | undefined {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '\\') continue;
    const next = pattern[i + 1] ?? '';
    if (next === 'u') return 'RE2 has no \\u escape (write \\x{41} or the character itself)';
    if (next === 'c') return 'RE2 has no \\c control escape';
    i++;
  }
  return undefined;
}
