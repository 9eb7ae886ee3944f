// Istio's older spellings: those its CRDs still take are read as their replacement; those Istio removed
// are refused with the replacement named, so that an old file says what to write instead.
import type { IssueSink } from '../model/issues.js';
import type { Obj } from './reader.js';
import { at } from './reader.js';

const REMOVED = (field: string, use: string) => `${field} was removed from Istio's VirtualService; use ${use}`;

/** HTTPRoute fields from before Istio's `headers`, and websocketUpgrade. */
export const REMOVED_HTTP_ROUTE_FIELDS: Readonly<Record<string, string>> = {
  appendHeaders: REMOVED('appendHeaders', 'headers.request.add'),
  appendRequestHeaders: REMOVED('appendRequestHeaders', 'headers.request.add'),
  removeRequestHeaders: REMOVED('removeRequestHeaders', 'headers.request.remove'),
  appendResponseHeaders: REMOVED('appendResponseHeaders', 'headers.response.add'),
  removeResponseHeaders: REMOVED('removeResponseHeaders', 'headers.response.remove'),
  // Istio upgrades WebSockets with no field since; meshlet's sidecars set no upgrade_configs, so none is honoured.
  websocketUpgrade: 'websocketUpgrade was removed from Istio; meshlet sidecars do not proxy WebSocket upgrades yet',
};

/**
 * The key the deprecated integer mirror percentage is written under: `mirrorPercent`, or `mirror_percent`,
 * the proto field name that Istio's CRD also lists. Both together are refused.
 */
export function oldMirrorPercentKey(sink: IssueSink, r: Obj, path: string): 'mirrorPercent' | 'mirror_percent' {
  if (r.mirror_percent === undefined) return 'mirrorPercent';
  if (r.mirrorPercent !== undefined) sink.add(at(path, 'mirror_percent'), 'expected mirrorPercent or mirror_percent (its older spelling), not both');
  return 'mirror_percent';
}
