// Where Envoy's .proto files are: @grpc/grpc-js-xds ships them under deps/, in four trees.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Include dirs for Envoy's protos, in the order imports must be searched: Envoy API, xds/udpa, googleapis, PGV. */
export function envoyIncludeDirs(): string[] {
  const pkgDir = dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json'));
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(pkgDir, 'deps', d));
}
