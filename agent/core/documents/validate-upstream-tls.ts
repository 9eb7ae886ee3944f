// Validates a traffic policy's `tls` (sidecar → upstream): DISABLE, SIMPLE or MUTUAL with files on the host.
import type { IssueSink } from '../model/issues.js';
import type { UpstreamTls } from '../model/model.js';
import { at, describe, readObject, readString, readStringList } from './reader.js';
import { readBool } from './read-bool.js';

const FILE_FIELDS = ['clientCertificate', 'privateKey', 'caCertificates'] as const;

/**
 * A host file the sidecar reads: absolute, no `..` part, no ':' or ',' (they split a compose volume), no
 * control characters. Whether it exists is the host's matter: each agent looks on its host at every render
 * and reports a missing one on this field (missing-tls-files.ts).
 */
export function hostFileProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'expected an absolute path (it is read on the host and mounted into the sidecar)';
  if (path.split('/').some((part) => part === '..' || part === '.')) return 'expected a path without "." or ".." parts';
  if (/[\x00-\x1f\x7f]/.test(path)) return 'expected a path without control characters';
  if (/[:,]/.test(path)) return 'expected a path without ":" or "," (compose mounts it with host:container:ro)';
  if (path.endsWith('/') || path.includes('//')) return 'expected the path of a file (no empty parts, no trailing "/")';
  if (path.length > 1024) return `expected at most 1024 characters, got ${path.length}`;
  return undefined;
}

export function readUpstreamTls(sink: IssueSink, value: unknown, path: string): UpstreamTls | undefined {
  const t = readObject(sink, value, path, ['mode', ...FILE_FIELDS, 'sni', 'subjectAltNames', 'insecureSkipVerify'], {
    credentialName: 'is not supported (it names a Kubernetes secret; meshlet reads certificates from files on the host: clientCertificate, privateKey, caCertificates)',
    caCrl: 'is not supported (certificate revocation lists are not rendered by meshlet)',
  });
  if (!t) return undefined;
  const mode = readMode(sink, t.mode, at(path, 'mode'));
  if (mode === 'DISABLE') {
    for (const k of Object.keys(t)) if (k !== 'mode') sink.add(at(path, k), 'is only used with mode SIMPLE or MUTUAL (mode is DISABLE)');
    return { mode };
  }
  const files: Partial<Record<(typeof FILE_FIELDS)[number], string>> = {};
  for (const k of FILE_FIELDS) {
    if (t[k] === undefined) continue;
    const file = readString(sink, t[k], at(path, k), { expected: 'the absolute path of a file on the host' });
    const problem = file === undefined ? undefined : hostFileProblem(file);
    if (problem) sink.add(at(path, k), `${problem}, got ${describe(file)}`);
    else if (file !== undefined) files[k] = file;
  }
  const sni = t.sni === undefined ? undefined : readString(sink, t.sni, at(path, 'sni'), { pattern: /^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$/, expected: 'a server name (letters, digits, "." and "-")' });
  const sans = t.subjectAltNames === undefined ? [] : readStringList(sink, t.subjectAltNames, at(path, 'subjectAltNames'), { pattern: /^[\x21-\x7e]{1,1024}$/, expected: 'a subject alternative name (a DNS name or URI)' }) ?? [];
  const skip = t.insecureSkipVerify === undefined ? false : readBool(sink, t.insecureSkipVerify, at(path, 'insecureSkipVerify')) ?? false;
  if (mode === 'MUTUAL') {
    for (const k of ['clientCertificate', 'privateKey'] as const) if (t[k] === undefined) sink.add(at(path, k), 'expected the path of a file on the host (required with mode MUTUAL)');
  }
  if (mode === 'SIMPLE') {
    for (const k of ['clientCertificate', 'privateKey'] as const) if (t[k] !== undefined) sink.add(at(path, k), 'is only used with mode MUTUAL (SIMPLE presents no client certificate)');
  }
  if (skip && t.caCertificates !== undefined) sink.add(at(path, 'insecureSkipVerify'), 'cannot be combined with caCertificates (nothing would be verified against them)');
  if (skip && sans.length > 0) sink.add(at(path, 'insecureSkipVerify'), 'cannot be combined with subjectAltNames (nothing would be verified against them)');
  if (!mode) return undefined;
  return { mode, ...files, ...(sni !== undefined ? { sni } : {}), subjectAltNames: sans, insecureSkipVerify: skip };
}

function readMode(sink: IssueSink, value: unknown, path: string): UpstreamTls['mode'] | undefined {
  if (value === 'DISABLE' || value === 'SIMPLE' || value === 'MUTUAL') return value;
  // Conformance depends on this message: "spec.trafficPolicy.tls.mode: ISTIO_MUTUAL is not supported".
  if (value === 'ISTIO_MUTUAL') sink.add(path, 'ISTIO_MUTUAL is not supported (meshlet has no mesh identity yet; use SIMPLE or MUTUAL with certificate files)');
  else if (typeof value === 'string') sink.add(path, `${/^[A-Z_]{1,40}$/.test(value) ? value : describe(value)} is not supported; expected DISABLE, SIMPLE or MUTUAL`);
  else if (value === undefined) sink.add(path, 'expected DISABLE, SIMPLE or MUTUAL (required)');
  else sink.add(path, `expected DISABLE, SIMPLE or MUTUAL, got ${describe(value)}`);
  return undefined;
}
