CREATE TYPE "public"."actor_type" AS ENUM('human', 'agent', 'system');--> statement-breakpoint
ALTER TYPE "public"."audit_action" ADD VALUE 'worker_updated';--> statement-breakpoint
ALTER TYPE "public"."audit_action" ADD VALUE 'released';--> statement-breakpoint
ALTER TYPE "public"."audit_action" ADD VALUE 'lease_expired';--> statement-breakpoint
ALTER TABLE "audit_log" ALTER COLUMN "actor_type" SET DATA TYPE "public"."actor_type" USING "actor_type"::text::"public"."actor_type";--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "required_capabilities" text[] DEFAULT '{}' NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "lease_expires_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "lease_seconds" integer;--> statement-breakpoint
CREATE INDEX "tasks_claimable_idx" ON "tasks" USING btree ("priority" DESC NULLS LAST,"due_date","created_at","id") WHERE "tasks"."status" = 'pending' and "tasks"."assigned_to" is null;--> statement-breakpoint
CREATE INDEX "tasks_lease_idx" ON "tasks" USING btree ("lease_expires_at") WHERE "tasks"."lease_expires_at" is not null;