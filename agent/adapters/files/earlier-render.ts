// What the last agent left for a new one to carry on from, should state.json be lost or behind: the files it
// rendered into the state dir, and the admin port in the bootstrap each of its sidecars mounts.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { ContainerInfo } from '../docker/docker-observer.js';
import { ENVOY_CONFIG_IN_CONTAINER, SIDECAR_SUFFIX } from '../../core/model/ids.js';
import { readIfExists } from './file-store.js';

const COMPOSE_FILE = 'compose/docker-compose.yml';

/** The compose file and every file under envoy/ and xds/, by path relative to the state dir; staged `.…` files left out. */
export async function readRenderedFiles(stateDir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const compose = await readIfExists(join(stateDir, COMPOSE_FILE));
  if (compose !== undefined) files.set(COMPOSE_FILE, compose);
  for (const sub of ['envoy', 'xds']) {
    const entries = await readdir(join(stateDir, sub), { withFileTypes: true }).catch(() => []);
    for (const e of entries.filter((x) => x.isFile() && !x.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const text = await readIfExists(join(stateDir, sub, e.name));
      if (text !== undefined) files.set(`${sub}/${e.name}`, text);
    }
  }
  return files;
}

/**
 * Workload (`web-v1`) → the admin port named by the bootstrap its sidecar container mounts, wherever that file is
 * (another state dir too). A sidecar whose file is gone or names no port is left out.
 */
export async function sidecarAdminPorts(containers: readonly ContainerInfo[]): Promise<Record<string, number>> {
  const ports: Record<string, number> = {};
  // While compose recreates a sidecar both containers show: the live one is read last and wins.
  const live = (c: ContainerInfo) => Number(c.state === 'running' || c.state === 'restarting');
  for (const c of [...containers].sort((a, b) => live(a) - live(b))) {
    const path = c.binds?.[ENVOY_CONFIG_IN_CONTAINER];
    if (c.role !== 'sidecar' || !c.composeService.endsWith(SIDECAR_SUFFIX) || !path) continue;
    const port = adminPortIn(await readIfExists(path).catch(() => undefined));
    if (port !== undefined) ports[c.composeService.slice(0, -SIDECAR_SUFFIX.length)] = port;
  }
  return ports;
}

function adminPortIn(bootstrap: string | undefined): number | undefined {
  if (bootstrap === undefined) return undefined;
  try {
    const doc = parse(bootstrap) as { admin?: { address?: { socket_address?: { port_value?: unknown } } } } | null;
    const port = doc?.admin?.address?.socket_address?.port_value;
    return typeof port === 'number' && Number.isInteger(port) ? port : undefined;
  } catch {
    return undefined; // not YAML: not a bootstrap meshlet wrote
  }
}
