// TLS from a sidecar to its upstream: the cluster's transport socket, and the host files it reads (mounted
// read-only into the sidecar container under UPSTREAM_TLS_ROOT, at the host path below it).
import type { PolicySections, UpstreamTls } from '../model/model.js';
import type { Json } from './envoy-types.js';
import { TYPE } from './envoy-types.js';

/** Where the sidecar container sees host file `/x/y.pem`: `/etc/meshlet/upstream-tls/x/y.pem`. */
export const UPSTREAM_TLS_ROOT = '/etc/meshlet/upstream-tls';

type Tls = Extract<UpstreamTls, { mode: 'SIMPLE' | 'MUTUAL' }>;

function active(tls: UpstreamTls | undefined): Tls | undefined {
  return tls && tls.mode !== 'DISABLE' ? tls : undefined;
}

/** The host files a policy's TLS reads, sorted. */
export function tlsFiles(policy: PolicySections | undefined): string[] {
  const t = active(policy?.tls);
  if (!t) return [];
  return [t.clientCertificate, t.privateKey, t.caCertificates].filter((f): f is string => f !== undefined).sort();
}

/**
 * The cluster's transport_socket, or undefined for plain text. `root` is the folder the host's files are
 * mounted under in the sidecar ('' where Envoy runs on the host itself). `alpn`: protocols to offer.
 */
export function tlsTransportSocket(policy: PolicySections | undefined, root: string, alpn: string[]): Json | undefined {
  const t = active(policy?.tls);
  if (!t) return undefined;
  const file = (hostPath: string) => ({ filename: root + hostPath });
  const common: Json = {};
  if (t.mode === 'MUTUAL') common.tls_certificates = [{ certificate_chain: file(t.clientCertificate!), private_key: file(t.privateKey!) }];
  if (!t.insecureSkipVerify) {
    // Without a validation context Envoy accepts any server certificate: no caCertificates means the
    // system's roots, as in Istio, never no check.
    common.validation_context = {
      ...(t.caCertificates !== undefined ? { trusted_ca: file(t.caCertificates) } : { system_root_certs: {} }),
      ...(t.subjectAltNames.length > 0 ? { match_typed_subject_alt_names: t.subjectAltNames.map(sanMatcher) } : {}),
    };
  }
  if (alpn.length > 0) common.alpn_protocols = alpn;
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: { '@type': TYPE.upstreamTls, ...(t.sni !== undefined ? { sni: t.sni } : {}), common_tls_context: common },
  };
}

function sanMatcher(san: string): Json {
  // A SPIFFE ID or other URI SAN has a scheme; anything else is a DNS name.
  return { san_type: /^[A-Za-z][A-Za-z0-9+.-]*:/.test(san) ? 'URI' : 'DNS', matcher: { exact: san } };
}
