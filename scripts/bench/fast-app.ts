// A fast HTTP app in its own process for the sidecar benchmarks: answers every request at once with
// `<version>\n` and header x-version, prints {"port":N} when listening, and exits when its stdin closes
// (so it never outlives the benchmark that started it).
import { createServer } from 'node:http';

const version = process.argv[2] ?? 'v1';
const body = `${version}\n`;
const headers = { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)), 'x-version': version };
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, headers);
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
