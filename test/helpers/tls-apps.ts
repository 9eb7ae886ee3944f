// TLS servers on 127.0.0.1 with a self-signed test certificate (made here with Debian's openssl), each
// answering every line with its version and the SNI it was reached by: for TLS passthrough tests.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import type { Instance } from '../../agent/core/model/model.js';
import { tempDir } from './paths.js';
import { firstLineBack } from './tcp-apps.js';

export interface TestCert {
  key: string;
  cert: string;
}

/** A self-signed certificate valid for `names` (subjectAltName DNS entries), one day. */
export function makeTestCert(names: string[]): TestCert {
  const dir = tempDir('meshlet-cert-');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
    '-keyout', key, '-out', cert,
  ], { stdio: 'pipe' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

export interface TlsApp {
  version: string;
  port: number;
  /** TLS sessions established (handshake done). */
  sessions: number;
  instance(node?: string): Instance;
  close(): Promise<void>;
}

/** Answers each line `L` with `<version> <sni> L` over TLS. */
export async function startTlsEcho(service: string, version: string, cert: TestCert): Promise<TlsApp> {
  const sockets = new Set<TLSSocket>();
  const server: Server = createServer({ key: cert.key, cert: cert.cert }, (s) => {
    app.sessions++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        s.write(`${version} ${(s as TLSSocket & { servername?: string | false }).servername || '-'} ${buf.slice(0, nl)}\n`);
        buf = buf.slice(nl + 1);
      }
    });
  });
  server.on('tlsClientError', () => {});
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  const app: TlsApp = {
    version,
    port,
    sessions: 0,
    instance: (node = 'local') => ({ service, version, node, address: '127.0.0.1', port }),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  return app;
}

/**
 * One TLS connection to 127.0.0.1:`port` sending SNI `servername`, trusting only `cert`: sends `line`,
 * returns the first line back, or `error: <message>` when the handshake or the connection fails.
 */
export function tlsExchange(port: number, servername: string, cert: TestCert, line: string, timeoutMs = 5000): Promise<string> {
  const s = connect({ host: '127.0.0.1', port, servername, ca: cert.cert });
  return firstLineBack(s, 'secureConnect', line, timeoutMs, (reason) => `error: ${reason}`);
}
