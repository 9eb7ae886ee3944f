// The fixtures/local mesh with its ports moved to a base, so tests don't collide with each other or the demo.
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { parseYamlDocuments } from '../../agent/core/documents/parse-yaml.js';
import { toEtcdEntry } from '../../agent/core/documents/etcd-docs.js';
import { fixture } from './paths.js';

/** Ports base..base+2 for the apps, base+3 for the proxy listener. */
export function localMesh(base: number, node = 'local'): string {
  return readFileSync(fixture('local', 'mesh.yaml'), 'utf8')
    .replace(/18080/g, String(base))
    .replace(/18081/g, String(base + 1))
    .replace(/18082/g, String(base + 2))
    .replace(/18180/g, String(base + 3))
    .replace(/nodes: \[local\]/g, `nodes: [${node}]`)
    .replace(/meshlet-test\/busybox:1/g, process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1');
}

/** Writes each document of `yaml` under the prefix the way `meshlet apply` stores it; returns the last revision. */
export async function putDocs(etcd: Etcd3, prefix: string, yaml: string): Promise<number> {
  let rev = 0;
  for (const raw of parseYamlDocuments('test.yaml', yaml, [])) {
    const e = toEtcdEntry(prefix, raw);
    const res = await etcd.put(e.key).value(e.value).exec();
    rev = Number(res.header.revision);
  }
  return rev;
}

export function randomPortBase(): number {
  return 20000 + Math.floor(Math.random() * 400) * 20;
}
