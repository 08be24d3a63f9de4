import { AuditListInput, AuditPage } from '../../shared/schemas/audit.js';
import * as auditService from '../services/audit-service.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { toAuditEntry } from './dto.js';
import { rest } from './openapi-meta.js';

export const auditRouter = router({
  list: protectedProcedure
    .meta(
      rest(
        'GET',
        '/audit',
        'audit',
        'Read the audit log',
        'Entries the caller may see, newest first, filtered, one keyset page at a time.',
      ),
    )
    .input(AuditListInput)
    .output(AuditPage)
    .query(async ({ ctx, input }) => {
      const page = await auditService.list(ctx.db, ctx.actor, input);
      return { items: page.items.map(toAuditEntry), nextCursor: page.nextCursor };
    }),
});
