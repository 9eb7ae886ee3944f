// A small block-style YAML emitter for plain data (the shapes meshlet renders). It is ~10× faster than the
// `yaml` package's stringify on 40 bootstraps, and its output is fixed by this code alone: same value, same bytes.
// Strings that could read as anything but themselves are written as JSON strings, which YAML 1.2 reads back as is.

const PLAIN = /^[A-Za-z0-9_/.][A-Za-z0-9_ ./:@+-]*$/;
const AMBIGUOUS = /^(true|false|yes|no|on|off|y|n|null|~|[-+]?(\.inf|\.nan)|[-+]?[0-9][0-9_.:eE+-]*|0x[0-9a-fA-F]+|0o[0-7]+)$/i;

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : v > 0 ? '.inf' : v < 0 ? '-.inf' : '.nan';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const s = String(v);
  // A trailing ':' would make the scalar a key (seen: an IPv6 endpoint 'fd00::' made Envoy's yaml-cpp fail).
  if (s !== '' && PLAIN.test(s) && !AMBIGUOUS.test(s) && !s.endsWith(' ') && !s.endsWith(':') && !s.includes(': ') && !s.includes(' #')) return s;
  return JSON.stringify(s);
}

function key(k: string): string {
  return scalar(k);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function emit(v: unknown, indent: string, lines: string[], prefix: string): void {
  if (Array.isArray(v)) {
    if (v.length === 0) return void lines.push(`${prefix}[]`);
    if (prefix) lines.push(prefix.trimEnd());
    for (const item of v) {
      if (isMap(item) && Object.keys(item).length > 0) {
        const entries = Object.entries(item).filter(([, x]) => x !== undefined);
        entries.forEach(([k, x], i) => emitEntry(k, x, `${indent}  `, lines, i === 0 ? `${indent}- ` : `${indent}  `));
      } else if (Array.isArray(item) && item.length > 0) {
        lines.push(`${indent}-`);
        emit(item, `${indent}  `, lines, '');
      } else {
        lines.push(`${indent}- ${isMap(item) ? '{}' : Array.isArray(item) ? '[]' : scalar(item)}`);
      }
    }
    return;
  }
  if (isMap(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return void lines.push(`${prefix}{}`);
    if (prefix) lines.push(prefix.trimEnd());
    for (const [k, x] of entries) emitEntry(k, x, indent, lines, indent);
    return;
  }
  lines.push(`${prefix}${scalar(v)}`);
}

function emitEntry(k: string, x: unknown, indent: string, lines: string[], lead: string): void {
  const head = `${lead}${key(k)}:`;
  if ((isMap(x) && Object.keys(x).length > 0) || (Array.isArray(x) && x.length > 0)) {
    lines.push(head);
    emit(x, Array.isArray(x) ? `${indent}  ` : `${indent}  `, lines, '');
  } else {
    emit(x, indent, lines, `${head} `);
  }
}

/** Block-style YAML for a JSON-like value, ending with a newline. */
export function toYaml(value: unknown): string {
  const lines: string[] = [];
  emit(value, '', lines, '');
  return `${lines.join('\n')}\n`;
}
