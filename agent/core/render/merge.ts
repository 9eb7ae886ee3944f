// Lays rendered values over a base document from templates/: mappings merge, everything else is replaced.
// Keys meshlet renders come first (in its order), then the template's own additions.

export function deepMerge<T>(base: unknown, over: T): T {
  if (!isMapping(base) || !isMapping(over)) return over;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  for (const [k, v] of Object.entries(base)) if (!(k in over)) out[k] = v;
  return out as T;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
