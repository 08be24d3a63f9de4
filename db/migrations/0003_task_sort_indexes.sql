CREATE INDEX "tasks_priority_idx" ON "tasks" USING btree ("priority","id");--> statement-breakpoint
CREATE INDEX "tasks_due_idx" ON "tasks" USING btree ("due_date","id");