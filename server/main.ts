import { setFlagsFromString } from 'node:v8';
import { createDatabase } from '../db/client.js';
import { buildApp } from './app.js';
import { verifierFromConfig } from './auth/verifier-from-config.js';
import { ConfigError, databaseOptions, loadConfig, streamProcessOptions } from './config.js';

// Under load V8 lets the old generation grow to several times what is live before collecting it
// (measured: 250-300 MB RSS for ~40 MB live). Growing by 60 % at a time keeps the process under
// 200 MB at no measurable cost in throughput or latency (see the README's Performance section).
setFlagsFromString('--heap-growing-percent=60');

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (error) {
  fail(error instanceof ConfigError ? error.message : `Invalid configuration: ${String(error)}`);
}

const database = await createDatabase(databaseOptions(config));
try {
  await database.migrate();
} catch (error) {
  const code =
    (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
  fail(
    `Cannot prepare the database (${database.kind}${code ? `, ${code}` : ''}): check DATABASE_URL / DATA_DIR`,
  );
}

const { verifier, devMode } = await verifierFromConfig(config);
const streamProcess = streamProcessOptions(config);
const app = await buildApp({ config, database, verifier, ...(streamProcess ? { streamProcess } : {}) });

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  app.log.info({ signal }, 'shutting down: finishing in-flight requests');
  // A request stuck past the timeout must not keep the process alive forever.
  const force = setTimeout(() => {
    app.log.error('in-flight requests did not finish in time; exiting');
    process.exit(1);
  }, config.requestTimeoutMs + 5_000);
  force.unref();
  try {
    await app.close();
    await database.close();
    process.exit(0);
  } catch (error) {
    app.log.error({ errName: (error as Error).name }, 'shutdown failed');
    process.exit(1);
  }
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

try {
  const address = await app.listen({ port: config.port, host: config.host });
  const base = address.replace('0.0.0.0', '127.0.0.1');
  app.log.info(
    { database: database.kind, auth: devMode ? 'development key' : 'jwks' },
    `TaskFlow listening on ${base}; API docs at ${base}/docs` +
      (devMode ? `; get a token with: npm run token -- --sub alice [--role admin]` : ''),
  );
} catch (error) {
  fail(
    `Cannot listen on ${config.host}:${config.port}: ${(error as { code?: string }).code ?? String(error)}`,
  );
}
