import { createDatabase } from '../../db/client.js';
import { ConfigError, databaseOptions, loadConfig } from '../config.js';

try {
  const database = await createDatabase(databaseOptions(loadConfig(process.env)));
  try {
    await database.migrate();
    console.log(`migrations applied (${database.kind})`);
  } finally {
    await database.close();
  }
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : `migration failed: ${String(error)}`);
  process.exit(1);
}
