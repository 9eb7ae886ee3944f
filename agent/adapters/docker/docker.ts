// Builds the dockerode client for a DOCKER_HOST address (unix:// or tcp://).
import Docker from 'dockerode';
import { ValidationError } from '../../core/errors.js';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/**
 * A Docker client for `host` (default: $DOCKER_HOST, else the system socket).
 * Every connection option is set explicitly: docker-modem merges its own reading of the
 * environment under ours, so a tcp DOCKER_HOST, DOCKER_CERT_PATH or DOCKER_CLIENT_TIMEOUT
 * would otherwise leak in. No `timeout` ever: it kills idle event streams.
 */
export function createDocker(host: string = process.env.DOCKER_HOST || DEFAULT_DOCKER_HOST): Docker {
  return new Docker({ ...modemOptions(host), timeout: undefined, ca: undefined, cert: undefined, key: undefined });
}

type ModemOptions = Pick<Docker.DockerOptions, 'socketPath' | 'host' | 'port' | 'protocol'>;

/** Connection options for one DOCKER_HOST address; refuses anything but unix:// and plain tcp://. */
export function modemOptions(host: string): ModemOptions {
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw badHost(host, 'a unix socket needs an absolute path, e.g. unix:///var/run/docker.sock');
    return { socketPath, host: undefined, port: undefined, protocol: 'http' };
  }
  if (host.startsWith('tcp://') || host.startsWith('http://')) {
    let url: URL;
    try {
      url = new URL(host.replace(/^tcp:/, 'http:'));
    } catch {
      throw badHost(host, 'expected tcp://HOST:PORT');
    }
    if (!url.port) throw badHost(host, 'expected tcp://HOST:PORT (the port is required)');
    return { socketPath: undefined, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port), protocol: 'http' };
  }
  throw badHost(host, 'expected unix:///PATH or tcp://HOST:PORT (TLS and ssh are not supported)');
}

function badHost(host: string, expected: string): ValidationError {
  return new ValidationError([{ doc: { source: 'DOCKER_HOST', index: 0, whole: true }, path: '', message: `${JSON.stringify(host)}: ${expected}` }], 'bad Docker address');
}
