// Start step 2: the xDS snapshot cache, the ADS server on loopback, and the publisher that fills the cache.
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { ConflictError } from '../core/errors.js';
import { SnapshotCache } from '../xds/snapshot-cache.js';
import { AdsServer } from '../xds/ads-server.js';
import { XdsPublisher } from '../xds/publisher.js';

export interface Xds {
  cache: SnapshotCache;
  server: AdsServer;
  publisher: XdsPublisher;
  /** The port bound (the one asked for, or the kernel's choice for 0). */
  port: number;
  /** Closes every stream and frees the port. */
  stop(): Promise<void>;
}

/** A port already in use is a ConflictError (the operator must pick another or stop the other program). */
export async function startXds(port: number, clock: Clock, log: Logger): Promise<Xds> {
  const cache = new SnapshotCache();
  const server = new AdsServer({ cache, log, clock });
  let bound: number;
  try {
    bound = await server.start(port);
  } catch (err) {
    await server.stop();
    throw new ConflictError(`cannot serve xDS on 127.0.0.1:${port}: ${(err as Error).message} (is another agent or program using the port? see --xds-port)`, { cause: err });
  }
  return { cache, server, publisher: new XdsPublisher(cache, log), port: bound, stop: () => server.stop() };
}
