import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

// The Compose specification's own schema, as published in the compose-go module (what `docker compose` uses).
const COMPOSE_GO = 'github.com/compose-spec/compose-go/v2@v2.16.2';

/** A validator for compose files against the Compose specification (no Docker engine runs here). */
export function composeValidator() {
  const moduleDir = JSON.parse(
    execFileSync('go', ['mod', 'download', '-json', COMPOSE_GO], { encoding: 'utf8' }),
  ).Dir;
  const schema = JSON.parse(readFileSync(join(moduleDir, 'schema', 'compose-spec.json'), 'utf8'));
  return new Ajv2020({ strict: false, allErrors: true }).compile(schema);
}

/** A compose file parsed as docker compose reads it (YAML merge keys resolved). */
// biome-ignore lint/suspicious/noExplicitAny: compose files are untyped YAML, checked field by field by the tests
export function readCompose(path: string): any {
  return parse(readFileSync(path, 'utf8'), { merge: true });
}

/** Every ${VAR} a compose file reads. */
export function variablesOf(path: string): Set<string> {
  return new Set([...readFileSync(path, 'utf8').matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1] as string));
}
