// Start step 3: a working Docker Compose and a Docker daemon that answers, both checked before anything runs.
import type Docker from 'dockerode';
import type { Clock } from '../core/clock.js';
import { ExternalError } from '../core/errors.js';
import { detectCompose, type ComposeMode, type ComposeRunner, type ComposeRunnerOptions } from '../adapters/docker/compose-runner.js';
import { createDocker, DEFAULT_DOCKER_HOST } from '../adapters/docker/docker.js';
import { DockerApiObserver } from '../adapters/docker/docker-observer.js';
import { within } from './until-reachable.js';

const PING_DEADLINE_MS = 10_000;

/** The outside programs this step talks to; tests pass fakes. */
export interface DockerAccess {
  detectCompose(mode: ComposeMode, opts: ComposeRunnerOptions): Promise<ComposeRunner>;
  createDocker(host?: string): Docker;
}

export const realDocker: DockerAccess = { detectCompose, createDocker };

export interface DockerHost {
  compose: ComposeRunner;
  docker: DockerApiObserver;
  /** Nothing to release: the Docker client holds no connection between calls. */
  stop(): void;
}

/** Compose missing, or a daemon that does not answer a ping, fails the start (ExternalError: exit 4). */
export async function connectDocker(mode: ComposeMode, dockerHost: string | undefined, clock: Clock, access: DockerAccess = realDocker): Promise<DockerHost> {
  const compose = await access.detectCompose(mode, { ...(dockerHost ? { dockerHost } : {}) });
  const client = access.createDocker(dockerHost);
  try {
    await within(PING_DEADLINE_MS, client.ping(), 'Docker ping', clock);
  } catch (err) {
    const where = dockerHost ?? (process.env.DOCKER_HOST || DEFAULT_DOCKER_HOST);
    throw new ExternalError(`cannot reach Docker at ${where}: ${(err as Error).message} (is dockerd running? see DOCKER_HOST)`, err);
  }
  return { compose, docker: new DockerApiObserver(client), stop: () => {} };
}
