// Generated DestinationRule traffic policies: every field meshlet renders, in shapes validation accepts
// (tls stays DISABLE: the files of SIMPLE/MUTUAL are host matters, tested apart).
import fc from 'fast-check';

const duration = fc.oneof(fc.integer({ min: 1, max: 5000 }).map((n) => `${n}ms`), fc.integer({ min: 1, max: 600 }).map((n) => `${n}s`), fc.constantFrom('1m30s', '1.5s', '2h'));
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);

/** Every DestinationRule load balancer shape meshlet renders (a tcp Service hashes only the source IP). */
const loadBalancer = (tcp: boolean) => {
  const key = tcp ? fc.constant({ useSourceIp: true }) : fc.oneof(
    headerName.map((httpHeaderName) => ({ httpHeaderName })),
    fc.record({ name: fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,10}$/), path: fc.constantFrom('/', '/app'), ttl: fc.constantFrom('0s', '60s', '1h') }, { requiredKeys: ['name'] }).map((httpCookie) => ({ httpCookie })),
    fc.constant({ useSourceIp: true }),
    fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/).map((httpQueryParameterName) => ({ httpQueryParameterName })),
  );
  const table = fc.oneof(fc.constant({}), fc.integer({ min: 1, max: 100000 }).map((minimumRingSize) => ({ ringHash: { minimumRingSize } })),
    fc.constantFrom(5, 65537, 131071).map((tableSize) => ({ maglev: { tableSize } })), fc.constant({ maglev: {} }), fc.integer({ min: 1, max: 100000 }).map((minimumRingSize) => ({ minimumRingSize })));
  const locality = fc.oneof(
    fc.constant({ distribute: [{ from: '*', to: { 'meshlet/*': 70, '*': 30 } }] }),
    fc.constant({ failover: [{ from: 'meshlet', to: 'eu' }] }),
    fc.constant({ failoverPriority: ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone'] }),
    fc.constant({ enabled: false }),
  );
  return fc.oneof(
    fc.record({ simple: fc.constantFrom('ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN', 'UNSPECIFIED'), warmupDurationSecs: duration, localityLbSetting: locality }, { requiredKeys: ['simple'] }),
    fc.record({ simple: fc.constantFrom('ROUND_ROBIN', 'LEAST_REQUEST'), warmup: fc.record({ duration, minimumPercent: fc.integer({ min: 0, max: 100 }), aggression: fc.double({ min: 1, max: 10, noNaN: true }) }, { requiredKeys: ['duration'] }) }),
    fc.record({ simple: fc.constant('RANDOM'), localityLbSetting: locality }, { requiredKeys: ['simple'] }),
    fc.record({ key, table, localityLbSetting: fc.option(locality, { nil: undefined }) }).map(({ key: k, table: t, localityLbSetting }) => ({ consistentHash: { ...k, ...t }, ...(localityLbSetting ? { localityLbSetting } : {}) })),
  );
};

const outlierCounts = fc.oneof(
  fc.record({ consecutive5xxErrors: fc.integer({ min: 0, max: 100 }), consecutiveGatewayErrors: fc.integer({ min: 0, max: 100 }) }, { requiredKeys: [] }),
  fc.integer({ min: 0, max: 100 }).map((consecutiveErrors) => ({ consecutiveErrors })),
);

const sectionsFor = (tcp: boolean) => fc.record({
  loadBalancer: loadBalancer(tcp),
  connectionPool: fc.record({
    tcp: fc.record({
      maxConnections: fc.integer({ min: 1, max: 4294967295 }), connectTimeout: duration, maxConnectionDuration: duration, idleTimeout: duration,
      tcpKeepalive: fc.record({ probes: fc.integer({ min: 1, max: 20 }), time: fc.constantFrom('1s', '75s', '2h'), interval: fc.constantFrom('1s', '1500ms', '30s') }, { requiredKeys: [] }),
    }, { requiredKeys: [] }),
    http: fc.record({
      http1MaxPendingRequests: fc.integer({ min: 1, max: 100000 }), http2MaxRequests: fc.integer({ min: 1, max: 100000 }), maxRequestsPerConnection: fc.integer({ min: 0, max: 1000 }), maxRetries: fc.integer({ min: 0, max: 100 }), idleTimeout: duration,
      maxConcurrentStreams: fc.integer({ min: 1, max: 1000 }),
      h2: fc.constantFrom({ h2UpgradePolicy: 'DEFAULT' }, { h2UpgradePolicy: 'DO_NOT_UPGRADE' }, { h2UpgradePolicy: 'UPGRADE' }, { useClientProtocol: true }, { useClientProtocol: false }),
    }, { requiredKeys: [] }).map(({ h2, ...rest }) => ({ ...rest, ...(h2 ?? {}) })),
  }, { requiredKeys: [] }),
  outlierDetection: fc.tuple(outlierCounts, fc.record({
    interval: duration, baseEjectionTime: duration, maxEjectionPercent: fc.integer({ min: 0, max: 100 }), minHealthPercent: fc.integer({ min: 0, max: 100 }),
    split: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
  }, { requiredKeys: [] })).map(([counts, { split, ...rest }]) => ({ ...counts, ...rest, ...(split !== undefined ? { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: split } : {}) })),
  tls: fc.constant({ mode: 'DISABLE' }),
}, { requiredKeys: [] });

/** A policy for a Service on `port`; sometimes with portLevelSettings for that port (which then replace the sections). */
export const trafficPolicyFor = (tcp: boolean, port: number) => fc.tuple(sectionsFor(tcp), fc.option(sectionsFor(tcp), { nil: undefined }))
  .map(([sections, level]) => (level ? { ...sections, portLevelSettings: [{ port: { number: port }, ...level }] } : sections));
