// An HTTPS app on 127.0.0.1 (node:https) with a test certificate, optionally requiring a client certificate:
// the upstream of the TLS DestinationRule tests. It answers like the HTTP apps (`x-app`) and records the
// SNI and client certificate subject of each request.
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type { Instance } from '../../agent/core/model/model.js';
import type { TestCerts } from './test-certs.js';

export interface HttpsApp {
  id: string;
  port: number;
  seen: { servername: string | false; clientCn?: string }[];
  /** TLS handshakes the server refused (no or bad client certificate, unknown CA alert). */
  refused: string[];
  instance(node?: string): Instance;
  close(): Promise<void>;
}

export async function startHttpsApp(certs: TestCerts, opts: { id: string; version?: string; requireClientCert?: boolean }): Promise<HttpsApp> {
  const version = opts.version ?? 'v1';
  const seen: HttpsApp['seen'] = [];
  const refused: string[] = [];
  const server: Server = createServer({
    key: readFileSync(certs.serverKey),
    cert: readFileSync(certs.serverCert),
    ...(opts.requireClientCert ? { ca: readFileSync(certs.ca), requestCert: true, rejectUnauthorized: true } : {}),
  }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const peer = opts.requireClientCert ? socket.getPeerCertificate() : undefined;
    seen.push({ servername: (socket as unknown as { servername: string | false }).servername, ...(peer?.subject ? { clientCn: String(peer.subject.CN) } : {}) });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-version': version, 'x-app': opts.id });
      res.end(`${version} ${opts.id}\n`);
    });
  });
  server.on('tlsClientError', (err) => refused.push(err.message));
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  return {
    id: opts.id,
    port,
    seen,
    refused,
    instance: (node = 'local') => ({ service: 'api', version, node, address: '127.0.0.1', port }),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
