ALTER TABLE "audit_log" ADD COLUMN "task" jsonb;--> statement-breakpoint
-- Every audit row carries the task as its change left it: the row is written after the change in
-- the same transaction, so whichever service records it, the event has its task without a second
-- read at delivery. A deleted task is gone by then: null.
CREATE FUNCTION audit_log_task_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.task_id IS NOT NULL THEN
    SELECT to_jsonb(t) INTO NEW.task FROM tasks t WHERE t.id = NEW.task_id;
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER audit_log_task_snapshot
  BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_task_snapshot();
--> statement-breakpoint
-- A wake-up for every instance, sent when the writing transaction commits (one per transaction).
-- It carries nothing: listeners read the table, so a lost notification only delays.
CREATE FUNCTION audit_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('taskflow_events', '');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER audit_log_notify
  AFTER INSERT ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_notify();
