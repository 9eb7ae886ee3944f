// Regular expressions Envoy compiles with RE2, checked with RE2 itself before Envoy would NACK them.
//
// Seen with Envoy 1.40 (`envoy --mode validate`, a route `safe_regex`): JS compiles lookaround, backreferences,
// `\u`, `\c` and `[^]`, RE2 refuses them ("invalid perl operator: (?=", "invalid escape sequence: \u",
// "missing ]: [^]"), and Envoy NACKs the whole RouteConfiguration; RE2 accepts `(?i)` and `\-`, which JS
// refuses. So the pattern is compiled by RE2 (re2-wasm, the build @grpc/grpc-js-xds matches routes with).
// re2-wasm's wrapper rewrites JS's `\u` and `\c` escapes before compiling; Envoy's RE2 does not: refused here.
import { createRequire } from 'node:module';

interface Wrapped { ok(): boolean; error(): string; delete(): void }
type WrappedCtor = new (pattern: string, ignoreCase: boolean, multiline: boolean, dotAll: boolean) => Wrapped;
type Re2Ctor = new (pattern: string, flags: string) => { wrapper?: Wrapped };
let re2: { RE2: Re2Ctor; WrappedRE2: WrappedCtor } | undefined;

// Loaded on the first regex (about 12 MiB of WebAssembly): most meshes have none.
function loadRe2(): { RE2: Re2Ctor; WrappedRE2: WrappedCtor } {
  const require = createRequire(import.meta.url);
  re2 ??= { RE2: (require('re2-wasm') as { RE2: Re2Ctor }).RE2, WrappedRE2: (require('re2-wasm/build/wasm/re2') as { WrappedRE2: WrappedCtor }).WrappedRE2 };
  return re2;
}

/** Longer patterns are refused unread: Envoy refuses any RE2 program over 100 instructions, and re2-wasm's fixed 16 MiB heap aborts on about 400 kB. */
export const MAX_REGEX_LENGTH = 16 * 1024;

// Each render checks every route regex again (validation and the strict Envoy check): a compile in WebAssembly
// costs ~0.1 ms, so the verdicts are kept, up to a bound (a map cleared when full is enough: patterns repeat).
const verdicts = new Map<string, string | undefined>();
const MAX_VERDICTS = 4096;

/** Why Envoy's RE2 refuses `pattern`; undefined when it compiles. */
export function re2SyntaxError(pattern: string): string | undefined {
  if (verdicts.has(pattern)) return verdicts.get(pattern);
  const why = compileError(pattern);
  if (verdicts.size >= MAX_VERDICTS) verdicts.clear();
  verdicts.set(pattern, why);
  return why;
}

function compileError(pattern: string): string | undefined {
  const escape = jsOnlyEscape(pattern);
  if (escape) return escape;
  if (pattern.length > MAX_REGEX_LENGTH) return `at most ${MAX_REGEX_LENGTH} characters, got ${pattern.length}`;
  const { RE2, WrappedRE2 } = loadRe2();
  // re2-wasm's RE2 class never frees its compiled regex (an embind handle): seen, after about 6,000 checks
  // the heap was full and every regex, even ".*", was refused with "abort(Cannot enlarge memory arrays".
  // So compile once bare and delete it; the class (whose duplicate-group check RE2 lacks) only runs on a pattern that compiles.
  let wrapped: Wrapped | undefined;
  try {
    wrapped = new WrappedRE2(withPythonGroups(pattern), false, false, false);
    if (!wrapped.ok()) return `RE2: ${oneLine(wrapped.error())}`;
  } catch (err) {
    return `RE2: ${oneLine((err as Error).message)}`;
  } finally {
    wrapped?.delete();
  }
  try {
    new RE2(pattern, 'u').wrapper?.delete();
    return undefined;
  } catch (err) {
    // "Invalid regular expression: /(?P<a>x)(?P<a>y)/u: Duplicate capture group name" → RE2's own words.
    const msg = (err as Error).message;
    return `RE2: ${oneLine(msg.slice(msg.lastIndexOf('/u: ') >= 0 ? msg.lastIndexOf('/u: ') + 4 : 0))}`;
  }
}

/** `(?<name>` → `(?P<name>`, as the RE2 class does (this RE2 build knows only the second; Envoy's takes both). */
function withPythonGroups(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '\\') { out += pattern.slice(i, i + 2); i++; continue; }
    if (pattern.startsWith('(?<', i) && pattern[i + 3] !== '=' && pattern[i + 3] !== '!') { out += '(?P<'; i += 2; continue; }
    out += pattern[i];
  }
  return out;
}

function oneLine(text: string): string {
  return text.split('\n')[0]!.slice(0, 200);
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
