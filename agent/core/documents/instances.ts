// Registered instances as read from a file (meshlet render --instances) or from etcd's registry.
import { isIP } from 'node:net';
import type { IssueSink } from '../model/issues.js';
import type { Instance } from '../model/model.js';
import { LOCALITY_NAME, NODE_NAME, SERVICE_NAME, VERSION_NAME } from '../model/model.js';
import { at, readInt, readObject, readString } from './reader.js';

export function readInstance(sink: IssueSink, value: unknown, path: string): Instance | undefined {
  const o = readObject(sink, value, path, ['service', 'version', 'node', 'address', 'port', 'container', 'healthySince', 'region', 'zone']);
  if (!o) return undefined;
  const service = readString(sink, o.service, at(path, 'service'), { pattern: SERVICE_NAME, expected: 'a service name' });
  const version = readString(sink, o.version, at(path, 'version'), { pattern: VERSION_NAME, expected: 'a version key' });
  const node = readString(sink, o.node, at(path, 'node'), { pattern: NODE_NAME, expected: 'a node name' });
  const address = readString(sink, o.address, at(path, 'address'), { expected: 'an IP address' });
  const port = readInt(sink, o.port, at(path, 'port'), 1, 65535, 'a port');
  const container = o.container === undefined ? undefined : readString(sink, o.container, at(path, 'container'));
  const healthySince = o.healthySince === undefined ? undefined : readString(sink, o.healthySince, at(path, 'healthySince'));
  const region = o.region === undefined ? undefined : readString(sink, o.region, at(path, 'region'), { pattern: LOCALITY_NAME, expected: 'a region name' });
  const zone = o.zone === undefined ? undefined : readString(sink, o.zone, at(path, 'zone'), { pattern: LOCALITY_NAME, expected: 'a zone name' });
  if (!service || !version || !node || address === undefined || port === undefined) return undefined;
  return { service, version, node, address, port, ...(container ? { container } : {}), ...(healthySince ? { healthySince } : {}), ...(region ? { region } : {}), ...(zone ? { zone } : {}) };
}

export function isIpAddress(text: string): boolean {
  return isIP(text) !== 0;
}
