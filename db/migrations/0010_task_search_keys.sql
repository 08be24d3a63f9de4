-- The member search (`q` by a non-admin) reads, per tag the caller holds, only the tasks that carry it
-- and contain every three-character piece of q: one GIN key per (tag, piece) of a task. A tag says
-- who may see the task: 'p:<project>' for a project's task, 'w:<worker>' for the creator and the
-- holder of a project-less task (the rule of server/services/visibility.ts). Pieces are taken from
-- lower() of the text, as ILIKE compares, so a task whose title or description contains q carries
-- every piece of q. Keys are hashed to integers (a GIN index of text keys built four times slower);
-- a collision only adds a candidate: the keys narrow the search, the visibility condition and ILIKE
-- still decide it.
CREATE FUNCTION task_search_keys(project_slug text, created_by text, assigned_to text, title text, description text)
RETURNS integer[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  tags text[] := CASE
    WHEN project_slug IS NOT NULL THEN ARRAY['p:' || project_slug]
    WHEN assigned_to IS NULL OR assigned_to = created_by THEN ARRAY['w:' || created_by]
    ELSE ARRAY['w:' || created_by, 'w:' || assigned_to]
  END;
  tag text;
  body text;
  c text[];
  keys integer[] := '{}';
BEGIN
  FOREACH tag IN ARRAY tags LOOP
    keys := keys || hashtext(tag);
    FOREACH body IN ARRAY ARRAY[title, description] LOOP
      -- One character per element: substr() on a multibyte string counts from its start every time.
      c := regexp_split_to_array(lower(body), '');
      FOR i IN 1 .. coalesce(cardinality(c), 0) - 2 LOOP
        keys := keys || hashtext(tag || ' ' || c[i] || c[i + 1] || c[i + 2]);
      END LOOP;
    END LOOP;
  END LOOP;
  RETURN keys;
END $$;
--> statement-breakpoint
-- The keys a task holding `tag` and containing `q` must have: the tag alone when q is shorter than
-- three characters.
CREATE FUNCTION task_search_query(tag text, q text) RETURNS integer[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  c text[] := regexp_split_to_array(lower(q), '');
  keys integer[] := '{}';
BEGIN
  IF coalesce(cardinality(c), 0) < 3 THEN
    RETURN ARRAY[hashtext(tag)];
  END IF;
  FOR i IN 1 .. cardinality(c) - 2 LOOP
    keys := keys || hashtext(tag || ' ' || c[i] || c[i + 1] || c[i + 2]);
  END LOOP;
  RETURN keys;
END $$;
--> statement-breakpoint
-- Without a pending list: a search would scan it whole once per tag (see db/schema/tasks.ts).
CREATE INDEX "tasks_search_keys_idx" ON "tasks" USING gin (task_search_keys("project_slug", "created_by", "assigned_to", "title", "description")) WITH (fastupdate=false);
