-- The senders are woken by a change that queued a delivery, not by every change (audit_log_notify's
-- channel wakes them for writes to projects no endpoint watches, one claim query per instance each).
CREATE OR REPLACE FUNCTION audit_log_webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_deliveries (endpoint_id, event_id, message_id)
  SELECT e.id, NEW.id, NEW.id::text FROM webhook_endpoints e
  WHERE e.enabled
    AND (e.project_slug IS NULL OR e.project_slug = NEW.project_slug)
    AND (cardinality(e.actions) = 0 OR NEW.action = ANY (e.actions));
  IF FOUND THEN
    PERFORM pg_notify('taskflow_webhooks', '');
  END IF;
  RETURN NULL;
END;
$$;
