// Proves the environment scripts/dev-env.sh brings up works: etcd, dockerd, compose v1 and the
// four local images (busybox, node, the real Envoy sidecar and the stand-in that idles), as the other
// end-to-end tests will use them. Loopback traffic only.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { Etcd3 } from 'etcd3';
import { runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/paths.js';

const run = promisify(execFile);
const TEST_LABEL = 'meshlet.test';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the tests through scripts/test.sh, or first: eval "$(scripts/dev-env.sh env)"`);
  }
  return value;
}

function dockerFromEnv(): Docker {
  const host = requireEnv('DOCKER_HOST');
  assert.match(host, /^unix:\/\//, 'the dev environment serves Docker on a unix socket');
  return new Docker({ socketPath: host.slice('unix://'.length) });
}

const docker = dockerFromEnv();
const created: Docker.Container[] = [];

after(async () => {
  // Best effort: a container may already be gone; dev-env.sh down removes labeled leftovers too.
  await Promise.all(created.map((c) => c.remove({ force: true }).catch(() => undefined)));
});

// Creates and starts a labeled container on the host network.
async function startContainer(image: string, cmd?: string[], binds: string[] = []): Promise<Docker.Container> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    Labels: { [TEST_LABEL]: '1' },
    HostConfig: { NetworkMode: 'host', Binds: binds },
  });
  created.push(container);
  await container.start();
  return container;
}

async function logsOf(container: Docker.Container): Promise<string> {
  // Non-follow logs come back as one Buffer; the 8-byte frame headers don't hide the text.
  const buf = await container.logs({ stdout: true, stderr: true, follow: false });
  return buf.toString('utf8');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await probe();
      if (result !== undefined) return result;
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}

test('etcd answers a put and a get', async () => {
  const etcd = new Etcd3({ hosts: requireEnv('MESHLET_TEST_ETCD') });
  const key = `/meshlet-test/dev-env/${process.pid}-${Date.now()}`;
  try {
    await etcd.put(key).value('hello');
    assert.equal(await etcd.get(key).string(), 'hello');
    await etcd.delete().key(key);
    assert.equal(await etcd.get(key).string(), null);
  } finally {
    etcd.close();
  }
});

test('dockerd answers and has the four test images', async () => {
  const version = await docker.version();
  assert.ok(version.ApiVersion, 'daemon reports an API version');
  for (const name of ['MESHLET_TEST_BUSYBOX_IMAGE', 'MESHLET_TEST_SIDECAR_IMAGE', 'MESHLET_TEST_STANDIN_IMAGE', 'MESHLET_TEST_NODE_IMAGE']) {
    const image = await docker.getImage(requireEnv(name)).inspect();
    assert.ok(image.Config.Labels?.['meshlet.recipe'], `${name} carries its recipe hash`);
  }
});

test('busybox httpd in a host-network container answers on loopback', async () => {
  const port = await freePort();
  await startContainer(requireEnv('MESHLET_TEST_BUSYBOX_IMAGE'), ['httpd', '-f', '-p', `127.0.0.1:${port}`]);
  const body = await eventually('httpd to answer', 10_000, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    return res.ok ? res.text() : undefined;
  });
  assert.equal(body, 'meshlet-test busybox\n');
});

test('node image runs the host node binary', async () => {
  const container = await startContainer(requireEnv('MESHLET_TEST_NODE_IMAGE'), [
    'node',
    '-e',
    'console.log("node " + process.versions.node)',
  ]);
  assert.equal((await container.wait()).StatusCode, 0);
  assert.match(await logsOf(container), new RegExp(`node ${process.versions.node.replaceAll('.', '\\.')}`));
});

test('envoy stand-in refuses to start without a readable -c file', async () => {
  const image = requireEnv('MESHLET_TEST_STANDIN_IMAGE');
  const noConfig = await startContainer(image); // default Cmd: ["envoy"]
  assert.equal((await noConfig.wait()).StatusCode, 1);
  assert.match(await logsOf(noConfig), /no configuration/);

  const missing = await startContainer(image, ['envoy', '-c', '/etc/envoy/missing.yaml']);
  assert.equal((await missing.wait()).StatusCode, 1);
  assert.match(await logsOf(missing), /unable to read file/);
});

test('envoy stand-in runs with a config file and stops promptly on SIGTERM', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-dev-env-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'envoy.yaml');
  await writeFile(config, 'node: {id: test, cluster: test}\n');

  const container = await startContainer(
    requireEnv('MESHLET_TEST_STANDIN_IMAGE'),
    ['envoy', '-c', '/etc/envoy/envoy.yaml', '--base-id', '7', '--service-node', 'n1', '-l', 'info'],
    [`${config}:/etc/envoy/envoy.yaml:ro`],
  );
  await eventually('the stand-in to report it started', 5_000, async () =>
    (await logsOf(container)).includes('started with config /etc/envoy/envoy.yaml') ? true : undefined,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal((await container.inspect()).State.Running, true, 'still running after start-up');

  const started = Date.now();
  await container.stop({ t: 10 });
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 2_000, `stopped in ${elapsed} ms; a SIGTERM-deaf process would take 10 s`);
  assert.equal((await container.inspect()).State.ExitCode, 0);
});

test('the sidecar image runs the real Envoy of the pinned version', async () => {
  const version = requireEnv('MESHLET_TEST_ENVOY_VERSION');
  const container = await startContainer(requireEnv('MESHLET_TEST_SIDECAR_IMAGE'), ['envoy', '--version']);
  assert.equal((await container.wait()).StatusCode, 0);
  // e.g. "envoy  version: 9e55809…/1.40.0/Clean/RELEASE/BoringSSL"
  assert.match(await logsOf(container), new RegExp(`version: [0-9a-f]{40}/${version.replaceAll('.', '\\.')}/`));
});

test('the real Envoy in the sidecar image validates a bootstrap meshlet rendered, and refuses a broken one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-dev-env-render-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const rendered = await runCli(['render', '-f', fixture('local', 'mesh.yaml'), '--node', 'local', '--out', join(dir, 'out')]);
  assert.equal(rendered.code, 0, rendered.err);
  const validate = async (file: string) => {
    const c = await startContainer(requireEnv('MESHLET_TEST_SIDECAR_IMAGE'), ['envoy', '--mode', 'validate', '-c', '/etc/envoy/envoy.yaml', '--disable-hot-restart', '-l', 'error'], [`${file}:/etc/envoy/envoy.yaml:ro`]);
    return { code: (await c.wait()).StatusCode as number, log: await logsOf(c) };
  };
  const good = await validate(join(dir, 'out', 'envoy', 'api-v1.yaml'));
  assert.equal(good.code, 0, good.log);
  assert.match(good.log, /configuration '\/etc\/envoy\/envoy.yaml' OK/);

  const broken = join(dir, 'broken.yaml');
  await writeFile(broken, readFileSync(join(dir, 'out', 'envoy', 'api-v1.yaml'), 'utf8').replace(/port_value: \d+/, 'port_value: 70000'));
  const bad = await validate(broken);
  assert.equal(bad.code, 1, bad.log);
  assert.match(bad.log, /port_value/);
});

test('docker-compose v1.29 drives this daemon', async (t) => {
  const { stdout } = await run('docker-compose', ['version', '--short']);
  assert.match(stdout.trim(), /^1\.29\./);

  // `version` alone never contacts the daemon: bring a one-service project up and down.
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-dev-env-compose-'));
  const project = `meshlettestdevenv${process.pid}`;
  const compose = ['-p', project, '-f', join(dir, 'docker-compose.yml')];
  t.after(async () => {
    await run('docker-compose', [...compose, 'down', '-t', '1']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  await writeFile(
    join(dir, 'docker-compose.yml'),
    [
      'version: "2.4"',
      'services:',
      '  idle:',
      `    image: ${requireEnv('MESHLET_TEST_BUSYBOX_IMAGE')}`,
      '    command: ["sleep", "300"]',
      '    network_mode: host',
      '    init: true',
      `    labels: {${TEST_LABEL}: "1"}`,
      '',
    ].join('\n'),
  );
  await run('docker-compose', [...compose, 'up', '-d']);
  const running = await docker.listContainers({
    filters: { label: [`com.docker.compose.project=${project}`] },
  });
  assert.equal(running.length, 1);
  assert.equal(running[0]?.State, 'running');
});
