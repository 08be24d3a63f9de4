import { generateOpenApiDocument, type OpenAPIObject } from 'trpc-to-openapi';
import type { AppRouter } from './routers/index.js';
import { VERSION } from './version.js';

export function buildOpenApiDocument(router: AppRouter): OpenAPIObject {
  return generateOpenApiDocument(router, {
    title: 'TaskFlow API',
    description:
      'Tasks for teams of humans and AI agents. Every operation here mirrors a tRPC procedure at `/trpc`. ' +
      'Authenticate with `Authorization: Bearer <JWT>` (in development: `npm run token -- --sub alice`).',
    version: VERSION,
    openApiVersion: '3.1.0',
    baseUrl: '/api',
    tags: ['tasks', 'projects', 'workers', 'audit', 'health'],
    securitySchemes: {
      Authorization: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
    },
  });
}
