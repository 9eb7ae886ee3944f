// Reads every node's registrations (`<p>/registry/<service>/<version>/<node>`) into Instances for
// endpoints. Agents of other versions and people with etcdctl write there too: a value that cannot be
// trusted is skipped with a warning, never a crash.
import { IssueSink, type Issue } from '../../core/model/issues.js';
import { formatIssue } from '../../core/model/issues.js';
import { isIpAddress, readInstance } from '../../core/documents/instances.js';
import { keys } from '../../core/model/keys.js';
import type { Instance } from '../../core/model/model.js';

export type Warn = (msg: string, fields?: Record<string, unknown>) => void;

/** A registry entry as a snapshot source holds it (EtcdDesiredSource's DesiredEntry fits), or its bare value. */
export type RegistryValue = string | { value: string };

/**
 * One registration. The key's last three segments are `<service>/<version>/<node>` and must agree with
 * the value. Unknown fields in the value are allowed (a newer agent may add some); a missing or invalid
 * required field, a non-IP address or unreadable JSON skip the entry.
 */
export function parseInstance(key: string, value: string, warn: Warn): Instance | undefined {
  const skip = (reason: string, extra: Record<string, unknown> = {}) => {
    warn('skipping a registry entry', { key, reason, ...extra });
    return undefined;
  };
  const parts = key.split('/');
  if (parts.length < 4) return skip('the key does not end in <service>/<version>/<node>');
  const [service, version, node] = parts.slice(-3) as [string, string, string];
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return skip('the value is not JSON', { value: value.slice(0, 200) });
  }
  const issues: Issue[] = [];
  const inst = readInstance(new IssueSink({ source: key, index: 0, whole: true }, issues), json, '');
  const fatal = issues.filter((i) => !/^unknown field/.test(i.message));
  if (!inst || fatal.length > 0) return skip('invalid value', { problems: (fatal.length > 0 ? fatal : issues).map(formatIssue) });
  if (inst.service !== service || inst.version !== version || inst.node !== node) {
    return skip('the value names another instance than its key', { value: `${inst.service}/${inst.version}/${inst.node}` });
  }
  if (!isIpAddress(inst.address)) return skip('the address is not an IP address', { address: inst.address });
  return inst;
}

/**
 * Every valid instance under `<prefix>/registry/`, sorted by service, version, node. Keys that are not
 * exactly `<p>/registry/<service>/<version>/<node>` are skipped with a warning.
 */
export function instancesFromRegistry(prefix: string, entries: ReadonlyMap<string, RegistryValue>, warn: Warn): Instance[] {
  const root = keys(prefix).registry;
  const out: Instance[] = [];
  for (const [key, entry] of entries) {
    if (!key.startsWith(root) || key.slice(root.length).split('/').length !== 3) {
      warn('skipping a registry entry', { key, reason: `not a key of the form ${root}<service>/<version>/<node>` });
      continue;
    }
    const inst = parseInstance(key, typeof entry === 'string' ? entry : entry.value, warn);
    if (inst) out.push(inst);
  }
  return out.sort((a, b) => cmp(a.service, b.service) || cmp(a.version, b.version) || cmp(a.node, b.node));
}

/**
 * The same, called every pass: an entry is parsed (and warned about) once per distinct value, so a
 * garbage key logs one warning, not one per pass.
 */
export class RegistryReader {
  #cache = new Map<string, { value: string; instance: Instance | undefined }>();

  constructor(private readonly prefix: string, private readonly warn: Warn) {}

  read(entries: ReadonlyMap<string, RegistryValue>): Instance[] {
    const next = new Map<string, { value: string; instance: Instance | undefined }>();
    for (const [key, entry] of entries) {
      const value = typeof entry === 'string' ? entry : entry.value;
      const cached = this.#cache.get(key);
      if (cached && cached.value === value) {
        next.set(key, cached);
        continue;
      }
      const [instance] = instancesFromRegistry(this.prefix, new Map([[key, value]]), this.warn);
      next.set(key, { value, instance });
    }
    this.#cache = next;
    return [...next.values()]
      .map((e) => e.instance)
      .filter((i): i is Instance => i !== undefined)
      .sort((a, b) => cmp(a.service, b.service) || cmp(a.version, b.version) || cmp(a.node, b.node));
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
