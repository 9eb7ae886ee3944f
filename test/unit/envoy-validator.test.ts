// Proves the strict Envoy JSON validator accepts real configs and pinpoints each kind of mistake.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { loadEnvoyProtos } from '../../agent/envoy-proto/envoy-protos.js';
import { validateEnvoy, type EnvoyIssue } from '../../agent/envoy-proto/envoy-validator.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';

/** The type URLs the agent emits (its own table) and the bootstrap's, as `meshlet render` checks it. */
const XDS_TYPE_URLS = { LISTENER: TYPE.listener, ROUTE: TYPE.route, CLUSTER: TYPE.cluster, ENDPOINT: TYPE.endpoint, BOOTSTRAP: 'envoy.config.bootstrap.v3.Bootstrap' } as const;

const ANY = 'type.googleapis.com/';
const ads = () => ({ ads: {}, resource_api_version: 'V3' });
const sockAddr = (address: string, port: number) => ({ socket_address: { address, port_value: port } });

function bootstrap(): any {
  return {
    node: { id: 'sidecar-web-1', cluster: 'web' },
    admin: { address: sockAddr('127.0.0.1', 9901) },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds_cluster' } }] },
      cds_config: ads(),
      lds_config: ads(),
    },
    static_resources: {
      clusters: [{
        name: 'xds_cluster',
        type: 'STATIC',
        connect_timeout: '1s',
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': `${ANY}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
        load_assignment: {
          cluster_name: 'xds_cluster',
          endpoints: [{ lb_endpoints: [{ endpoint: { address: sockAddr('127.0.0.1', 18000) } }] }],
        },
      }],
    },
  };
}

function listener(): any {
  return {
    name: 'ingress_http',
    address: sockAddr('0.0.0.0', 15001),
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': `${ANY}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
          stat_prefix: 'ingress_http',
          codec_type: 'AUTO',
          rds: { route_config_name: 'web_routes', config_source: ads() },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': `${ANY}envoy.extensions.filters.http.router.v3.Router` } }],
          access_log: [{
            name: 'envoy.access_loggers.stdout',
            typed_config: { '@type': `${ANY}envoy.extensions.access_loggers.stream.v3.StdoutAccessLog` },
          }],
        },
      }],
    }],
  };
}

function routeConfig(): any {
  return {
    name: 'web_routes',
    virtual_hosts: [{
      name: 'web',
      domains: ['*'],
      routes: [{
        match: { prefix: '/' },
        route: {
          weighted_clusters: { clusters: [{ name: 'web-v1', weight: 80 }, { name: 'web-v2', weight: 20 }] },
          timeout: '1.5s',
          retry_policy: { retry_on: '5xx,connect-failure', num_retries: 3, per_try_timeout: '0.250s' },
          request_mirror_policies: [{ cluster: 'web-shadow', runtime_fraction: { default_value: { numerator: 10, denominator: 'HUNDRED' } } }],
        },
      }],
    }],
  };
}

function edsCluster(): any {
  return {
    name: 'web',
    type: 'EDS',
    eds_cluster_config: { eds_config: ads() },
    connect_timeout: '0.25s',
    lb_policy: 'ROUND_ROBIN',
  };
}

function loadAssignment(): any {
  return {
    cluster_name: 'web',
    endpoints: [{
      locality: { zone: 'vm-a' },
      lb_endpoints: [
        { endpoint: { address: sockAddr('10.0.0.11', 8080) }, load_balancing_weight: 1 },
        { endpoint: { address: sockAddr('10.0.0.12', 8080) }, health_status: 'HEALTHY' },
      ],
    }],
  };
}

// Exactly one issue, at `path`, whose message contains every fragment.
function expectIssue(issues: EnvoyIssue[], path: string, ...fragments: string[]): void {
  const at = issues.filter((i) => i.path === path);
  assert.equal(at.length, 1, `expected one issue at ${path}, got ${JSON.stringify(issues, null, 2)}`);
  for (const f of fragments) assert.ok(at[0]!.message.includes(f), `"${at[0]!.message}" should contain "${f}"`);
  assert.equal(issues.length, 1, `expected only the issue at ${path}, got ${JSON.stringify(issues, null, 2)}`);
}

describe('envoy protos', () => {
  it('load every entry file', () => {
    const p = loadEnvoyProtos();
    assert.deepEqual(p.failed, []);
    assert.deepEqual(p.missingImports, []);
    console.log(`envoy protos loaded in ${p.loadMs.toFixed(0)} ms (${p.root.files.length} files)`);
  });
});

describe('validateEnvoy accepts valid documents', () => {
  it('bootstrap with ADS and an http2 static xds_cluster', () => {
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.BOOTSTRAP, bootstrap()), []);
    assert.deepEqual(validateEnvoy('envoy.config.bootstrap.v3.Bootstrap', bootstrap()), []);
  });
  it('listener with HttpConnectionManager, RDS over ADS and the router filter', () => {
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.LISTENER, listener()), []);
  });
  it('route configuration with weighted clusters, timeout, retries and mirroring', () => {
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.ROUTE, routeConfig()), []);
  });
  it('EDS cluster and its ClusterLoadAssignment', () => {
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.CLUSTER, edsCluster()), []);
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, loadAssignment()), []);
  });
  it('lowerCamelCase json names, 64-bit strings, null defaults and well-known types', () => {
    const c = edsCluster();
    c.connectTimeout = c.connect_timeout;
    delete c.connect_timeout;
    c.per_connection_buffer_limit_bytes = 32768;
    c.common_lb_config = { healthy_panic_threshold: { value: 50 } };
    c.metadata = { filter_metadata: { 'meshlet': { version: 'v1', weights: [1, 2], on: true } } };
    c.dns_lookup_family = null;
    c.circuit_breakers = { thresholds: [{ priority: 'DEFAULT', max_connections: 1024, max_requests: '2048' }] };
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.CLUSTER, c), []);
  });
  it('validation of ~200 resources is fast', () => {
    const docs: [string, unknown][] = [];
    for (let i = 0; i < 40; i++) {
      docs.push([XDS_TYPE_URLS.LISTENER, listener()], [XDS_TYPE_URLS.ROUTE, routeConfig()], [XDS_TYPE_URLS.CLUSTER, edsCluster()],
        [XDS_TYPE_URLS.ENDPOINT, loadAssignment()], [XDS_TYPE_URLS.BOOTSTRAP, bootstrap()]);
    }
    const passes: number[] = [];
    for (let pass = 0; pass < 5; pass++) {
      const t0 = performance.now();
      for (const [t, d] of docs) assert.equal(validateEnvoy(t, d).length, 0);
      passes.push(performance.now() - t0);
    }
    console.log(`validated ${docs.length} resources: first pass ${passes[0]!.toFixed(1)} ms, best warm pass ${Math.min(...passes.slice(1)).toFixed(1)} ms`);
  });
});

describe('validateEnvoy pinpoints mistakes', () => {
  it('typo in a field name, with a suggestion', () => {
    const b = bootstrap();
    b.static_resources.clusterz = b.static_resources.clusters;
    delete b.static_resources.clusters;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.BOOTSTRAP, b), 'static_resources.clusterz', 'unknown field "clusterz"', '(did you mean "clusters"?)');
  });
  it('wrong JSON type for port_value', () => {
    const b = bootstrap();
    const path = 'static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value';
    b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 'http';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.BOOTSTRAP, b), path, 'expected uint32', 'string "http"');
    b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = true;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.BOOTSTRAP, b), path, 'expected uint32', 'boolean true');
  });
  it('port_value over 65535 fits uint32 but breaks the PGV rule', () => {
    const la = loadAssignment();
    la.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 70000;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value',
      'must be <= 65535, got 70000', 'uint32.lte');
  });
  it('integer ranges and fractions', () => {
    const la = loadAssignment();
    la.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = -1;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value', 'out of range for uint32');
    la.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 80.5;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value', 'an integer');
  });
  it('a safe_regex RE2 cannot compile (JS-only syntax that Envoy 1.40 NACKs)', () => {
    for (const [regex, says] of [['/api/(?=v2)', 'invalid perl operator: (?='], ['(?<!x)y', 'invalid perl operator: (?<'], ['(a)\\1', 'invalid escape sequence: \\1'], ['\\u0041', 'no \\u escape'], ['[^]', 'missing ]: [^]']] as const) {
      const r = routeConfig();
      r.virtual_hosts[0].routes[0].match = { safe_regex: { regex } };
      expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].routes[0].match.safe_regex.regex', 'Envoy (RE2) cannot compile', says);
    }
    const ok = routeConfig();
    ok.virtual_hosts[0].routes[0].match = { safe_regex: { regex: '/api/(v[0-9]+|[^/]*\\])/(?:x|y)\\.json' } };
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.ROUTE, ok), []);
  });
  it('unknown enum name, with a suggestion', () => {
    const c = edsCluster();
    c.lb_policy = 'ROUND_ROBINN';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.CLUSTER, c), 'lb_policy', 'unknown value "ROUND_ROBINN"', 'did you mean "ROUND_ROBIN"?');
    c.lb_policy = 99;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.CLUSTER, c), 'lb_policy', '99 is not a defined value');
  });
  it('unknown "@type" inside an Any', () => {
    const l = listener();
    l.filter_chains[0].filters[0].typed_config['@type'] = `${ANY}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr`;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.LISTENER, l), 'filter_chains[0].filters[0].typed_config.@type',
      'unknown type', 'did you mean "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"?');
  });
  it('a field inside an Any that its type does not have', () => {
    const l = listener();
    l.filter_chains[0].filters[0].typed_config.route_config_nam = 'web_routes';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.LISTENER, l), 'filter_chains[0].filters[0].typed_config.route_config_nam',
      'unknown field "route_config_nam" in envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  });
  it('Duration as a number or in milliseconds', () => {
    const r = routeConfig();
    r.virtual_hosts[0].routes[0].route.timeout = 1.5;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].routes[0].route.timeout', 'expected Duration as a string', 'number 1.5');
    r.virtual_hosts[0].routes[0].route.timeout = '1500ms';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].routes[0].route.timeout', 'invalid Duration "1500ms"');
  });
  it('PGV duration bound: connect_timeout must be > 0s', () => {
    const c = edsCluster();
    c.connect_timeout = '0s';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.CLUSTER, c), 'connect_timeout', 'must be > 0s');
  });
  it('two members of one oneof', () => {
    const r = routeConfig();
    r.virtual_hosts[0].routes[0].route.cluster = 'web-v1';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].routes[0].route.cluster',
      '"weighted_clusters" and "cluster" are both set, but oneof "cluster_specifier" allows at most one');
    const la = loadAssignment();
    la.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.named_port = 'http';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address.named_port',
      '"port_value" and "named_port" are both set, but oneof "port_specifier" allows at most one');
  });
  it('missing required oneof member', () => {
    const r = routeConfig();
    delete r.virtual_hosts[0].routes[0].route;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].routes[0]', 'oneof "action" is required');
  });
  it('PGV string min_len on an unset field', () => {
    const la = loadAssignment();
    delete la.cluster_name;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'cluster_name', 'must be at least 1 character(s) long', 'string.min_len');
    la.cluster_name = '';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'cluster_name', 'must be at least 1 character(s) long');
  });
  it('PGV message.required', () => {
    const l = listener();
    delete l.filter_chains[0].filters[0].typed_config.rds.config_source;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.LISTENER, l), 'filter_chains[0].filters[0].typed_config.rds.config_source', 'is required', 'message.required');
  });
  it('PGV repeated.min_items', () => {
    const r = routeConfig();
    r.virtual_hosts[0].domains = [];
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].domains', 'at least 1 item(s), got 0', 'repeated.min_items');
  });
  it('endpoint weight below the PGV minimum', () => {
    const la = loadAssignment();
    la.endpoints[0].lb_endpoints[1].load_balancing_weight = 0;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ENDPOINT, la), 'endpoints[0].lb_endpoints[1].load_balancing_weight', 'must be >= 1, got 0');
  });
  it('wrong container types: repeated must be an array, maps must be objects, no nulls inside', () => {
    const r = routeConfig();
    r.virtual_hosts[0].domains = '*';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].domains', 'expected an array');
    r.virtual_hosts[0].domains = ['*', null];
    expectIssue(validateEnvoy(XDS_TYPE_URLS.ROUTE, r), 'virtual_hosts[0].domains[1]', 'null is not allowed');
    const c = edsCluster();
    c.metadata = { filter_metadata: [] };
    expectIssue(validateEnvoy(XDS_TYPE_URLS.CLUSTER, c), 'metadata.filter_metadata', 'expected an object');
  });
  it('"@type" outside an Any, and a field given under both its names', () => {
    const c = edsCluster();
    c['@type'] = XDS_TYPE_URLS.CLUSTER;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.CLUSTER, c), '@type', 'only allowed in a google.protobuf.Any');
    const d = edsCluster();
    d.connectTimeout = '2s';
    expectIssue(validateEnvoy(XDS_TYPE_URLS.CLUSTER, d), 'connectTimeout', 'given twice');
  });
  it('well-known types inside an Any use {"@type", "value"}', () => {
    const b = bootstrap();
    b.static_resources.clusters[0].typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'] = {
      '@type': `${ANY}google.protobuf.Duration`,
      value: '1s',
    };
    assert.deepEqual(validateEnvoy(XDS_TYPE_URLS.BOOTSTRAP, b), []);
    b.static_resources.clusters[0].typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].value = 5;
    expectIssue(validateEnvoy(XDS_TYPE_URLS.BOOTSTRAP, b),
      'static_resources.clusters[0].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].value', 'expected Duration');
  });
});
