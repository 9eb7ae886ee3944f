// tcp and tls routes through real Envoy sidecars: a tcp route matched on the Service's port splits by
// weight, a sourceLabels route is taken only by the caller it names, and TLS passthrough picks the
// upstream by the SNI the client sends (the servers' own certificates, checked by the client end to end).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { exchange, exchangeMany, startTcpEcho, type TcpApp } from '../helpers/tcp-apps.js';
import { makeTestCert, startTlsEcho, tlsExchange, type TestCert, type TlsApp } from '../helpers/tls-apps.js';
import { freePort } from '../helpers/etcd.js';

let mesh: EnvoyMesh;
let store: TcpApp[];
let tls: TlsApp[];
let plain: TcpApp;
let cert: TestCert;
const port: Record<string, { store: number; secure: number }> = {};

// Two callers (separate Services: two sidecars of one Service would share its localPorts with SO_REUSEPORT).
const caller = (name: string) => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ${name}, namespace: apps }
spec:
  port: ${name === 'web' ? 1 : 4}
  versions: { v1: { image: ${name}:1, nodes: [local] } }
  upstreams:
    - { service: store, localPort: ${port[name]!.store} }
    - { service: secure, localPort: ${port[name]!.secure} }
`;
const services = () => `${caller('web')}---${caller('batch')}---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: store, namespace: data }
spec:
  protocol: tcp
  port: 2
  versions:
    v1: { image: store:1, nodes: [elsewhere] }
    v2: { image: store:2, port: 3, nodes: [elsewhere] }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: secure, namespace: data }
spec:
  protocol: tcp
  port: 8443
  versions:
    a: { image: secure:a, nodes: [elsewhere] }
    b: { image: secure:b, port: 8444, nodes: [elsewhere] }
    plain: { image: secure:plain, port: 8445, nodes: [elsewhere] }
`;

const storeRoute = (w1: number, w2: number) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: store, namespace: data }
spec:
  hosts: [store.data.svc.cluster.local]
  tcp:
    - match: [{ sourceLabels: { app: batch } }]
      route: [{ destination: { host: store, subset: v2 } }]
    - match: [{ port: 2 }]
      route:
        - { destination: { host: store, subset: v1 }, weight: ${w1} }
        - { destination: { host: store, subset: v2 }, weight: ${w2} }
`;

const secureRoute = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: secure, namespace: data }
spec:
  hosts: [secure]
  tls:
    - match: [{ sniHosts: [a.secure.test], port: 8443 }]
      route: [{ destination: { host: secure, subset: a } }]
    - match: [{ sniHosts: [b.secure.test, "*.b.secure.test"] }]
      route: [{ destination: { host: secure, subset: b } }]
    - match: [{ sniHosts: [batch-only.secure.test], sourceLabels: { app: batch } }]
      route: [{ destination: { host: secure, subset: b } }]
  tcp:
    - route: [{ destination: { host: secure, subset: plain } }]
`;

const instances = () => [...store, ...tls, plain].map((a) => a.instance('elsewhere'));
const apply = async (...rules: string[]) => {
  mesh.apply([services(), ...rules].join('---\n'), instances());
  await Promise.all([mesh.synced('web-v1'), mesh.synced('batch-v1')]);
};

before(async () => {
  cert = makeTestCert(['a.secure.test', 'b.secure.test', '*.b.secure.test', 'batch-only.secure.test', 'other.secure.test']);
  store = await Promise.all([startTcpEcho('store', 'v1'), startTcpEcho('store', 'v2')]);
  tls = await Promise.all([startTlsEcho('secure', 'a', cert), startTlsEcho('secure', 'b', cert)]);
  plain = await startTcpEcho('secure', 'plain');
  for (const name of ['web', 'batch']) port[name] = { store: await freePort(), secure: await freePort() };
  mesh = await startEnvoyMesh();
  mesh.apply([services(), storeRoute(70, 30), secureRoute].join('---\n'), instances());
  await mesh.startSidecar('web-v1');
  await mesh.startSidecar('batch-v1');
});

after(async () => {
  await mesh?.stop();
  for (const a of [...(store ?? []), ...(tls ?? []), ...(plain ? [plain] : [])]) await a.close();
});

for (const [w1, w2] of [[70, 30], [20, 80]] as const) {
  test(`tcp route matched on the Service's port: ${w1}/${w2} over 1,000 connections lands within 5 points`, async () => {
    await apply(storeRoute(w1, w2), secureRoute);
    const t = await exchangeMany(port.web!.store, 1000);
    assert.equal(t.failed, 0);
    const share = ((t.byVersion.v2 ?? 0) / 1000) * 100;
    assert.ok(Math.abs(share - w2) <= 5, `v2 got ${share}% (want ${w2} ± 5): ${JSON.stringify(t.byVersion)}`);
  });
}

test('the sourceLabels tcp route is taken by batch\'s sidecar only', async () => {
  await apply(storeRoute(100, 0), secureRoute);
  assert.deepEqual((await exchangeMany(port.batch!.store, 200)).byVersion, { v2: 200 });
  assert.deepEqual((await exchangeMany(port.web!.store, 200)).byVersion, { v1: 200 });
});

test('TLS passthrough: the SNI picks the upstream, and the client sees that upstream\'s own certificate', async () => {
  await apply(storeRoute(70, 30), secureRoute);
  for (const [sni, version] of [['a.secure.test', 'a'], ['b.secure.test', 'b'], ['x.b.secure.test', 'b']] as const) {
    for (let i = 0; i < 5; i++) {
      // Envoy does not terminate TLS here: the server reports the SNI it received, the client verified its certificate.
      assert.equal(await tlsExchange(port.web!.secure, sni, cert, `hello ${i}`), `${version} ${sni} hello ${i}`, sni);
    }
  }
});

test('plain TCP through the same listener goes to the tcp route; TLS with a name no route takes gets no TLS upstream', async () => {
  await apply(storeRoute(70, 30), secureRoute);
  // A client that speaks first in plain text: tls_inspector finds no ClientHello and hands it to the plain chain.
  assert.equal(await exchange(port.web!.secure, 'not tls'), 'plain secure-plain not tls');
  const before = { a: tls[0]!.sessions, b: tls[1]!.sessions, plain: plain.connections };
  const answer = await tlsExchange(port.web!.secure, 'other.secure.test', cert, 'hello');
  assert.match(answer, /^error: /, 'the plain echo server cannot complete a TLS handshake');
  assert.deepEqual({ a: tls[0]!.sessions, b: tls[1]!.sessions, plain: plain.connections }, { ...before, plain: before.plain + 1 });
});

test('a tls route with sourceLabels is taken by the caller it names only', async () => {
  await apply(storeRoute(70, 30), secureRoute);
  assert.equal(await tlsExchange(port.batch!.secure, 'batch-only.secure.test', cert, 'hi'), 'b batch-only.secure.test hi');
  const plainBefore = plain.connections;
  assert.match(await tlsExchange(port.web!.secure, 'batch-only.secure.test', cert, 'hi'), /^error: /);
  assert.equal(plain.connections, plainBefore + 1, 'web\'s sidecar sent it down the plain tcp route');
});
