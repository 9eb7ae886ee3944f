// Renders each sidecar's Envoy bootstrap and each proxyless app's gRPC xDS bootstrap.
import type { Workload } from './placement.js';
import { deepMerge } from './merge.js';
import { xdsNodeId } from '../model/ids.js';

export const XDS_CLUSTER = 'meshlet_xds';

export interface BootstrapOptions {
  node: string;
  xdsPort: number;
  adminPort: number;
}

function nodeMetadata(w: Workload, node: string, role: string): Record<string, string> {
  return { meshlet_node: node, meshlet_role: role, meshlet_service: w.service.name, meshlet_version: w.version.name };
}

/** An Envoy bootstrap: admin on loopback, ADS to the local agent over HTTP/2, everything else dynamic. */
export function renderSidecarBootstrap(w: Workload, template: Record<string, unknown>, opts: BootstrapOptions): Record<string, unknown> {
  const ads = { ads: {}, resource_api_version: 'V3' };
  return deepMerge(template, {
    node: {
      id: xdsNodeId('sidecar', opts.node, w.service.name, w.version.name),
      cluster: w.service.name,
      metadata: nodeMetadata(w, opts.node, 'sidecar'),
      locality: { zone: opts.node },
    },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: opts.adminPort } } },
    dynamic_resources: {
      ads_config: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        // Envoy's own reconnect backoff grows to 30 s: after an agent restart a sidecar waited up to ~20 s for
        // its next route (seen in the soak run). The agent is on loopback, so reconnecting often costs nothing.
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER, retry_policy: { retry_back_off: { base_interval: '0.25s', max_interval: '2s' } } } }],
        set_node_on_first_message_only: true,
      },
      cds_config: ads,
      lds_config: ads,
    },
    static_resources: {
      clusters: [
        {
          name: XDS_CLUSTER,
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: opts.xdsPort } } } }] }],
          },
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        },
      ],
    },
  });
}

/** The file named by GRPC_XDS_BOOTSTRAP for an app that dials `xds:///<service>`. */
export function renderXdsBootstrap(w: Workload, opts: { node: string; xdsPort: number }): Record<string, unknown> {
  return {
    xds_servers: [{ server_uri: `127.0.0.1:${opts.xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: [] }],
    node: {
      id: xdsNodeId('proxyless', opts.node, w.service.name, w.version.name),
      cluster: w.service.name,
      metadata: nodeMetadata(w, opts.node, 'proxyless'),
      // grpc-js-xds refuses a bootstrap without node.locality.
      locality: { zone: opts.node },
    },
  };
}
